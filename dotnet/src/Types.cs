using System;
using System.Collections.Generic;
using System.Text;

namespace Kahuna.Client
{
    // The numeric values of these enums are Kahuna.Client 1.2.8's, so a stored integer, a
    // cast or default(T) means what it meant there. They never cross the C ABI as they are:
    // Interop maps each value to the ABI's own constants and refuses undefined ones.

    /// <summary>The tier of a lock: replicated and durable, or held in the leader's memory only.
    /// Values as in Kahuna.Client 1.x (<c>default(LockDurability)</c> is <see cref="Ephemeral"/>);
    /// every method's default is <see cref="Persistent"/>.</summary>
    public enum LockDurability
    {
        /// <summary>Kept in the leader's memory only: fast, lost on a leader change.</summary>
        Ephemeral = 0,
        /// <summary>Replicated through Raft and fsynced on a quorum (the default of every method).</summary>
        Persistent = 1,
    }

    /// <summary>The tier of a key. Ephemeral and persistent keys are separate key spaces.
    /// Values as in Kahuna.Client 1.x; every method's default is <see cref="Persistent"/>.</summary>
    public enum KeyValueDurability
    {
        /// <summary>Kept in the leader's memory only: fast, lost on a leader change.</summary>
        Ephemeral = 0,
        /// <summary>Replicated through Raft and fsynced on a quorum (the default of every method).</summary>
        Persistent = 1,
    }

    /// <summary>The tier of a sequence: sequences are always persistent (as in Kahuna.Client 1.x).</summary>
    public enum SequenceDurability
    {
        /// <summary>Replicated through Raft and fsynced on a quorum.</summary>
        Persistent = 1,
    }

    /// <summary>
    /// When <see cref="KahunaClient.SetKeyValue(string, byte[], TimeSpan, KeyValueFlags, KeyValueDurability, System.Threading.CancellationToken)"/>
    /// writes. Values and <c>[Flags]</c> as in Kahuna.Client 1.2.8; <see cref="Set"/> (the default)
    /// and <see cref="SetNoRevision"/> may be combined with one condition.
    /// </summary>
    [Flags]
    public enum KeyValueFlags
    {
        /// <summary>No condition: the same as <see cref="Set"/>.</summary>
        None = 0,
        /// <summary>Always (the default).</summary>
        Set = 1,
        /// <summary>Kahuna 1.x: a set that skips revision bookkeeping. Here every write gets a
        /// revision, so this is the same as <see cref="Set"/>.</summary>
        SetNoRevision = 2,
        /// <summary>Only when the key exists.</summary>
        SetIfExists = 4,
        /// <summary>Only when the key does not exist.</summary>
        SetIfNotExists = 8,
        /// <summary>Only when the current value equals a given one: use <see cref="KahunaClient.TryCompareValueAndSetKeyValue(string, byte[], byte[], TimeSpan, KeyValueDurability, System.Threading.CancellationToken)"/>.</summary>
        SetIfEqualToValue = 16,
        /// <summary>Only when the current revision equals a given one: use <see cref="KahunaClient.TryCompareRevisionAndSetKeyValue(string, byte[], long, TimeSpan, KeyValueDurability, System.Threading.CancellationToken)"/>.</summary>
        SetIfEqualToRevision = 32,
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

        /// <summary>Creates an exception with a message and a code (Kahuna.Client 1.x's argument order).</summary>
        public KahunaException(string message, KahunaErrorCode code) : this(code, message)
        {
        }

        /// <summary>What went wrong.</summary>
        public KahunaErrorCode Code { get; }

        /// <summary>Whether trying again later could succeed (unavailable or timed out).</summary>
        public bool IsRetryable => Native.NativeMethods.kahuna_status_retryable((int)Code);
    }

    /// <summary>Severity of a message given to <see cref="KahunaClientOptions.Logger"/>.</summary>
    public enum KahunaLogLevel
    {
        /// <summary>Diagnostics: a client created, a lock acquired or released.</summary>
        Debug = 0,
        /// <summary>Something worth knowing: a lock lost.</summary>
        Information = 1,
        /// <summary>A call failed with a <see cref="KahunaException"/>.</summary>
        Warning = 2,
        /// <summary>A failure inside the client itself (a panic in the native library).</summary>
        Error = 3,
    }

    /// <summary>Options of a <see cref="KahunaClient"/>.</summary>
    public sealed class KahunaClientOptions
    {
        /// <summary>Deadline of one call, retries included (default 10 s).</summary>
        public TimeSpan OperationTimeout { get; set; } = TimeSpan.FromSeconds(10);
        /// <summary>Kahuna.Client 1.x's name of <see cref="OperationTimeout"/>.</summary>
        public TimeSpan DefaultOperationTimeout { get => OperationTimeout; set => OperationTimeout = value; }
        /// <summary>
        /// Receives the client's log messages (null: none). A plain callback, so the package
        /// depends on no logging framework: adapt it to yours, for example
        /// <c>(level, message) =&gt; logger.Log((LogLevel)level, message)</c>. Called from any
        /// thread, including the native library's; it must be quick and must not throw (an
        /// exception it throws is ignored).
        /// </summary>
        public Action<KahunaLogLevel, string> Logger { get; set; }
        /// <summary>Deadline of one attempt at one member; a member that does not answer is skipped (default 2 s).</summary>
        public TimeSpan AttemptTimeout { get; set; } = TimeSpan.FromSeconds(2);
        /// <summary>How long opening a connection may take (default 500 ms).</summary>
        public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromMilliseconds(500);
        /// <summary>This client's id in request ids (null: a random one). Two live clients must never share one.</summary>
        public string ClientId { get; set; }
        /// <summary>
        /// PEM CA certificate(s) that sign the members' certificates, for <c>https://</c>
        /// endpoints (null: the system's trusted roots). Setting any TLS option turns TLS on for
        /// <c>host:port</c> endpoints too; <c>http://</c> endpoints refuse TLS options.
        /// </summary>
        public string CaCertificatePem { get; set; }
        /// <summary>PEM client certificate (chain), for a cluster started with <c>--tls-client-ca</c>; needs <see cref="ClientCertificateKeyPem"/>.</summary>
        public string ClientCertificatePem { get; set; }
        /// <summary>The PEM private key of <see cref="ClientCertificatePem"/>.</summary>
        public string ClientCertificateKeyPem { get; set; }
        /// <summary>
        /// SHA-256 fingerprints of the server certificates to trust instead of a CA (64 hex digits,
        /// colons allowed, as <c>openssl x509 -fingerprint -sha256</c> prints them); as kahuna-ts's
        /// <c>trustedServerCertificateThumbprints</c>.
        /// </summary>
        public string[] TrustedServerCertificateThumbprints { get; set; }
        /// <summary>Accept any server certificate: encrypted but not authenticated. Development only.</summary>
        public bool AllowInsecureCertificateValidation { get; set; }
        /// <summary>Bearer token sent with every request, for a cluster started with <c>--auth-tokens</c> (null: none).</summary>
        public string Token { get; set; }
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

        /// <summary>Kahuna.Client 1.x's <c>LastModified</c> does not exist here: the server records the
        /// revision of each change, not its time. Order changes by <see cref="Revision"/>. Kept only so
        /// that ported code fails to compile with this explanation instead of reading a made-up value.</summary>
        [Obsolete("Kahuna keeps no modification time: order changes by Revision (see dotnet/PORTING.md).", true)]
        public long LastModified { get { throw new NotSupportedException("LastModified is not kept; use Revision"); } }

        /// <summary>The value as UTF-8 text (null when there is no value).</summary>
        public string ValueAsString() => Value == null ? null : Encoding.UTF8.GetString(Value);

        /// <summary>The value parsed as a decimal integer (surrounding white space and a sign allowed).</summary>
        /// <exception cref="KahunaException"><see cref="KahunaErrorCode.InvalidArgument"/> when there is no value
        /// or it is not an integer (as in Kahuna 1.x).</exception>
        public long ValueAsLong()
        {
            long n;
            if (Value != null && long.TryParse(Encoding.UTF8.GetString(Value), System.Globalization.NumberStyles.Integer,
                    System.Globalization.CultureInfo.InvariantCulture, out n))
                return n;
            throw new KahunaException("Value cannot be casted to long", KahunaErrorCode.InvalidArgument);
        }

        /// <summary>The value parsed as <c>true</c> or <c>false</c> (any case, surrounding white space allowed).</summary>
        /// <exception cref="KahunaException"><see cref="KahunaErrorCode.InvalidArgument"/> when there is no value
        /// or it is not a boolean (as in Kahuna 1.x).</exception>
        public bool ValueAsBool()
        {
            bool b;
            if (Value != null && bool.TryParse(Encoding.UTF8.GetString(Value).Trim(), out b)) return b;
            throw new KahunaException("Value cannot be casted to bool", KahunaErrorCode.InvalidArgument);
        }
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
            TimeSpan remaining, LockDurability durability, byte[] value, int waiters, int permits = 0, int holders = 0)
        {
            Value = value;
            Waiters = waiters;
            Permits = permits;
            Holders = holders;
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
        /// <summary>What the holder announces (an election leader's value); empty for plain locks.</summary>
        public byte[] Value { get; }
        /// <summary>Callers waiting in the lock's queue (filled by
        /// <see cref="KahunaClient.GetLockInfo"/>; 0 elsewhere).</summary>
        public int Waiters { get; }
        /// <summary>A semaphore's number of permits (<see cref="KahunaClient.AcquirePermit"/>); 0 for a lock.
        /// For a semaphore, <see cref="Owner"/>, <see cref="FencingToken"/> and the expiry are the caller's
        /// permit when it holds one, and otherwise no owner (empty) and the newest live permit's token.</summary>
        public int Permits { get; }
        /// <summary>A semaphore's permits held now; 0 for a lock.</summary>
        public int Holders { get; }
        /// <summary>Whether this is a semaphore's (<see cref="Permits"/> &gt; 0) rather than a lock's.</summary>
        public bool IsSemaphore => Permits > 0;
    }

    /// <summary>What a change of a key did.</summary>
    public enum KahunaKeyEventKind
    {
        /// <summary>The key was written.</summary>
        Put = 0,
        /// <summary>The key was deleted.</summary>
        Delete = 1,
        /// <summary>The key expired.</summary>
        Expire = 2,
    }

    /// <summary>One change of a key.</summary>
    public sealed class KahunaKeyEvent
    {
        internal KahunaKeyEvent(KahunaKeyEventKind kind, long revision, KahunaKeyValue keyValue)
        {
            Kind = kind;
            Revision = revision;
            KeyValue = keyValue;
        }

        /// <summary>What happened.</summary>
        public KahunaKeyEventKind Kind { get; }
        /// <summary>The revision of the change (cluster-wide, strictly increasing).</summary>
        public long Revision { get; }
        /// <summary>For a put the key as written; for a delete or expiry the key as it was.</summary>
        public KahunaKeyValue KeyValue { get; }
    }

    /// <summary>The retained changes of a key, oldest first.</summary>
    public sealed class KahunaKeyHistory
    {
        internal KahunaKeyHistory(string key, IReadOnlyList<KahunaKeyEvent> events, long retainedFromRevision, long revision)
        {
            Key = key;
            Events = events;
            RetainedFromRevision = retainedFromRevision;
            Revision = revision;
        }

        /// <summary>The key.</summary>
        public string Key { get; }
        /// <summary>The changes, oldest first.</summary>
        public IReadOnlyList<KahunaKeyEvent> Events { get; }
        /// <summary>Changes below this revision are no longer retained.</summary>
        public long RetainedFromRevision { get; }
        /// <summary>The store revision the history was read at.</summary>
        public long Revision { get; }
    }

    /// <summary>What a member does in the cluster's Raft group.</summary>
    public enum KahunaMemberRole
    {
        /// <summary>Votes in elections and counts towards the quorum of every write.</summary>
        Voter = 0,
        /// <summary>Receives the log but neither votes nor counts towards a quorum (a member
        /// being added, until it is promoted).</summary>
        Learner = 1,
    }

    /// <summary>A member of the cluster.</summary>
    public sealed class KahunaClusterMember
    {
        internal KahunaClusterMember(long id, string peerAddress, string clientAddress, bool isVoter,
            bool hasLeaderView, long matchedIndex, long lag, bool isAnswering, TimeSpan sinceLastAnswer)
        {
            Id = id;
            PeerAddress = peerAddress;
            ClientAddress = clientAddress;
            Role = isVoter ? KahunaMemberRole.Voter : KahunaMemberRole.Learner;
            HasLeaderView = hasLeaderView;
            MatchedIndex = matchedIndex;
            Lag = lag;
            IsAnswering = isAnswering;
            SinceLastAnswer = sinceLastAnswer;
        }

        /// <summary>The member's id.</summary>
        public long Id { get; }
        /// <summary>Raft traffic address.</summary>
        public string PeerAddress { get; }
        /// <summary>Client address (empty when it could not be learned).</summary>
        public string ClientAddress { get; }
        /// <summary>A voter or a learner.</summary>
        public KahunaMemberRole Role { get; }
        /// <summary>A voter (true) or a learner: <c>Role == KahunaMemberRole.Voter</c>.</summary>
        public bool IsVoter => Role == KahunaMemberRole.Voter;
        /// <summary>Whether the member that answered is the leader: only then are
        /// <see cref="MatchedIndex"/>, <see cref="Lag"/>, <see cref="IsAnswering"/> and
        /// <see cref="SinceLastAnswer"/> its view of this member; elsewhere they are 0 and false.</summary>
        public bool HasLeaderView { get; }
        /// <summary>The highest log index known to be stored on this member.</summary>
        public long MatchedIndex { get; }
        /// <summary>How many entries this member is behind the leader's last log index.</summary>
        public long Lag { get; }
        /// <summary>Whether it answered the leader within the last election timeout.</summary>
        public bool IsAnswering { get; }
        /// <summary>How long ago it last answered the leader (zero: never, since this leader was elected).</summary>
        public TimeSpan SinceLastAnswer { get; }

        /// <summary>The member as <c>id role client-address (peer peer-address)</c>, for logs.</summary>
        public override string ToString() =>
            Id + " " + (IsVoter ? "voter" : "learner") + " " + ClientAddress + " (peer " + PeerAddress + ")";
    }

    /// <summary>Who leads after <see cref="KahunaClient.TransferLeader"/>.</summary>
    public sealed class KahunaLeaderTransfer
    {
        internal KahunaLeaderTransfer(long leaderId, long term)
        {
            LeaderId = leaderId;
            Term = term;
        }

        /// <summary>The member that leads now.</summary>
        public long LeaderId { get; }
        /// <summary>The term it leads in.</summary>
        public long Term { get; }
    }

    /// <summary>The cluster as one member sees it.</summary>
    public sealed class KahunaClusterStatus
    {
        internal KahunaClusterStatus(long memberId, long leaderId, long term, string state,
            IReadOnlyList<KahunaClusterMember> members, long committedIndex, long appliedIndex, long lastLogIndex,
            long snapshotIndex, string storage)
        {
            MemberId = memberId;
            LeaderId = leaderId;
            Term = term;
            State = state;
            Members = members;
            CommittedIndex = committedIndex;
            AppliedIndex = appliedIndex;
            LastLogIndex = lastLogIndex;
            SnapshotIndex = snapshotIndex;
            Storage = storage;
        }

        /// <summary>The member that answered.</summary>
        public long MemberId { get; }
        /// <summary>The leader it knows (0 when none).</summary>
        public long LeaderId { get; }
        /// <summary>Its Raft term.</summary>
        public long Term { get; }
        /// <summary><c>leader</c>, <c>follower</c>, <c>candidate</c>, <c>learner</c> or <c>shutdown</c>.</summary>
        public string State { get; }
        /// <summary>Every member.</summary>
        public IReadOnlyList<KahunaClusterMember> Members { get; }
        /// <summary>Committed log index.</summary>
        public long CommittedIndex { get; }
        /// <summary>Applied log index.</summary>
        public long AppliedIndex { get; }
        /// <summary>Last log index.</summary>
        public long LastLogIndex { get; }
        /// <summary>Index of the latest snapshot.</summary>
        public long SnapshotIndex { get; }
        /// <summary>Storage engine.</summary>
        public string Storage { get; }
    }
}
