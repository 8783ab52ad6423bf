using System;
using System.Collections.Generic;
using System.Text;

namespace Kahuna.Client
{
    /// <summary>The tier of a lock: replicated and durable, or held in the leader's memory only.</summary>
    public enum LockDurability
    {
        /// <summary>Kept in the leader's memory only: fast, lost on a leader change.</summary>
        Ephemeral = 1,
        /// <summary>Replicated through Raft and fsynced on a quorum (the default).</summary>
        Persistent = 0,
    }

    /// <summary>The tier of a key. Ephemeral and persistent keys are separate key spaces.</summary>
    public enum KeyValueDurability
    {
        /// <summary>Kept in the leader's memory only: fast, lost on a leader change.</summary>
        Ephemeral = 1,
        /// <summary>Replicated through Raft and fsynced on a quorum (the default).</summary>
        Persistent = 0,
    }

    /// <summary>When <see cref="KahunaClient.SetKeyValue(string, byte[], TimeSpan, KeyValueFlags, KeyValueDurability, System.Threading.CancellationToken)"/> writes.</summary>
    public enum KeyValueFlags
    {
        /// <summary>Always.</summary>
        Set = 0,
        /// <summary>Only when the key exists.</summary>
        SetIfExists = 2,
        /// <summary>Only when the key does not exist.</summary>
        SetIfNotExists = 1,
        /// <summary>Only when the current value equals a given one: use <see cref="KahunaClient.TryCompareValueAndSetKeyValue(string, byte[], byte[], TimeSpan, KeyValueDurability, System.Threading.CancellationToken)"/>.</summary>
        SetIfEqualToValue = 3,
        /// <summary>Only when the current revision equals a given one: use <see cref="KahunaClient.TryCompareRevisionAndSetKeyValue(string, byte[], long, TimeSpan, KeyValueDurability, System.Threading.CancellationToken)"/>.</summary>
        SetIfEqualToRevision = 4,
    }

    // KahunaErrorCode is generated from the error catalogue: KahunaErrorCode.g.cs.

    /// <summary>A failed Kahuna call. Negative answers (a failed compare, a lock held by someone
    /// else, a missing key) are not exceptions but results.</summary>
    public sealed class KahunaException : Exception
    {
        /// <summary>Creates an exception with a code and a message.</summary>
        public KahunaException(KahunaErrorCode code, string message) : base(code + ": " + message)
        {
            Code = code;
        }

        /// <summary>What went wrong.</summary>
        public KahunaErrorCode Code { get; }

        /// <summary>Whether trying again later could succeed (unavailable or timed out).</summary>
        public bool IsRetryable => Native.NativeMethods.kahuna_status_retryable((int)Code);
    }

    /// <summary>Options of a <see cref="KahunaClient"/>.</summary>
    public sealed class KahunaClientOptions
    {
        /// <summary>Deadline of one call, retries included (default 10 s).</summary>
        public TimeSpan OperationTimeout { get; set; } = TimeSpan.FromSeconds(10);
        /// <summary>Deadline of one attempt at one member; a member that does not answer is skipped (default 2 s).</summary>
        public TimeSpan AttemptTimeout { get; set; } = TimeSpan.FromSeconds(2);
        /// <summary>How long opening a connection may take (default 500 ms).</summary>
        public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromMilliseconds(500);
        /// <summary>This client's id in request ids (null: a random one). Two live clients must never share one.</summary>
        public string ClientId { get; set; }
    }

    /// <summary>A key as read or written, or the answer of a conditional write.</summary>
    public sealed class KahunaKeyValue
    {
        internal KahunaKeyValue(string key, bool success, long revision, byte[] value, long createRevision,
            long version, DateTimeOffset? expires, KeyValueDurability durability)
        {
            Key = key;
            Success = success;
            Revision = revision;
            Value = value;
            CreateRevision = createRevision;
            Version = version;
            Expires = expires;
            Durability = durability;
        }

        /// <summary>The key (null when there is none).</summary>
        public string Key { get; }
        /// <summary>Whether the call did what it asked: found, written, deleted, extended, exists.</summary>
        public bool Success { get; }
        /// <summary>The revision of the change that last wrote the key (0 when there is none).</summary>
        public long Revision { get; }
        /// <summary>The value (null when there is no key). After a failed compare, the current value.</summary>
        public byte[] Value { get; }
        /// <summary>The revision that created this incarnation of the key.</summary>
        public long CreateRevision { get; }
        /// <summary>Writes since the key was created (1 after creation).</summary>
        public long Version { get; }
        /// <summary>When the key expires, in the leader's clock (null: never).</summary>
        public DateTimeOffset? Expires { get; }
        /// <summary>The key's tier.</summary>
        public KeyValueDurability Durability { get; }

        /// <summary>The value as UTF-8 text (null when there is no value).</summary>
        public string ValueAsString() => Value == null ? null : Encoding.UTF8.GetString(Value);

        /// <summary>The value parsed as a decimal integer.</summary>
        public long ValueAsLong() => long.Parse(ValueAsString() ?? "0", System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>One page of a prefix scan.</summary>
    public sealed class KahunaScanPage
    {
        internal KahunaScanPage(IReadOnlyList<KahunaKeyValue> items, byte[] nextPageToken, long revision)
        {
            Items = items;
            NextPageToken = nextPageToken;
            Revision = revision;
        }

        /// <summary>The keys of this page, in byte order.</summary>
        public IReadOnlyList<KahunaKeyValue> Items { get; }
        /// <summary>Pass to the next call for the next page; null on the last page.</summary>
        public byte[] NextPageToken { get; }
        /// <summary>The store revision the page was read at.</summary>
        public long Revision { get; }
    }

    /// <summary>A reserved range of sequence values: <see cref="Start"/> to <see cref="End"/> inclusive.</summary>
    public sealed class KahunaSequenceRange
    {
        internal KahunaSequenceRange(string name, long start, long count, bool replayed)
        {
            Name = name;
            Start = start;
            Count = count;
            Replayed = replayed;
        }

        /// <summary>The sequence.</summary>
        public string Name { get; }
        /// <summary>The first value of the range.</summary>
        public long Start { get; }
        /// <summary>The last value of the range (inclusive).</summary>
        public long End => Start + Count - 1;
        /// <summary>How many values.</summary>
        public long Count { get; }
        /// <summary>True when the range was reserved earlier under the same idempotency key.</summary>
        public bool Replayed { get; }
    }

    /// <summary>A lock as the server reports it.</summary>
    public sealed class KahunaLockInfo
    {
        internal KahunaLockInfo(string resource, byte[] owner, long fencingToken, DateTimeOffset expires,
            TimeSpan remaining, LockDurability durability)
        {
            Resource = resource;
            Owner = owner;
            FencingToken = fencingToken;
            Expires = expires;
            Remaining = remaining;
            Durability = durability;
        }

        /// <summary>The resource.</summary>
        public string Resource { get; }
        /// <summary>The holder's owner name (UTF-8).</summary>
        public byte[] Owner { get; }
        /// <summary>The holder's owner name as text.</summary>
        public string OwnerAsString => Encoding.UTF8.GetString(Owner);
        /// <summary>The holder's fencing token.</summary>
        public long FencingToken { get; }
        /// <summary>When the lease expires, in the leader's clock.</summary>
        public DateTimeOffset Expires { get; }
        /// <summary>Lease time left when the server answered.</summary>
        public TimeSpan Remaining { get; }
        /// <summary>The lock's tier.</summary>
        public LockDurability Durability { get; }
    }
}
