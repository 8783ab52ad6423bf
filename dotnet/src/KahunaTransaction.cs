using System;
using System.Collections.Generic;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace Kahuna.Client
{
    /// <summary>How a transaction compare relates the stored field to the given one.</summary>
    public enum CompareOperator
    {
        /// <summary>Equal.</summary>
        Equal = 0,
        /// <summary>Not equal.</summary>
        NotEqual = 1,
        /// <summary>Stored greater than given.</summary>
        Greater = 2,
        /// <summary>Stored less than given.</summary>
        Less = 3,
    }

    /// <summary>
    /// An atomic transaction (etcd-style): when every compare holds, the <c>Then*</c> operations
    /// run, otherwise the <c>Else*</c> ones, all in one log entry. Compares can check a lock's
    /// fencing token, so a write fenced by a lock is checked by the server itself.
    /// </summary>
    /// <example>
    /// <code>
    /// var r = await client.CreateTransaction()
    ///     .IfRevision("accounts/a", a.Revision).IfRevision("accounts/b", b.Revision)
    ///     .ThenSet("accounts/a", "90").ThenSet("accounts/b", "110")
    ///     .Commit();
    /// </code>
    /// </example>
    public sealed class KahunaTransaction
    {
        internal struct Cmp
        {
            internal int Kind, Op;
            internal byte[] Key, Value;
            internal long Number;
        }

        internal struct Op
        {
            internal int Kind;
            internal byte[] Key, Value;
            internal ulong Ttl;
        }

        private readonly KahunaClient _client;
        private readonly List<Cmp> _compares = new List<Cmp>();
        private readonly List<Op> _then = new List<Op>();
        private readonly List<Op> _else = new List<Op>();
        internal byte[] FenceResource;
        internal long FenceToken;

        internal KahunaTransaction(KahunaClient client) { _client = client; }

        private KahunaTransaction When(int kind, CompareOperator op, string key, byte[] value, long number)
        {
            var c = new Cmp();
            c.Kind = kind;
            c.Op = (int)op;
            c.Key = Interop.Utf8(key, nameof(key));
            c.Value = value;
            c.Number = number;
            _compares.Add(c);
            return this;
        }

        private KahunaTransaction Add(bool then, int kind, string key, byte[] value, TimeSpan expiry)
        {
            var o = new Op();
            o.Kind = kind;
            o.Key = Interop.Utf8(key, nameof(key));
            o.Value = value;
            o.Ttl = Interop.Millis(expiry, nameof(expiry));
            (then ? _then : _else).Add(o);
            return this;
        }

        /// <summary>Requires the value of <paramref name="key"/> to relate to <paramref name="value"/>.</summary>
        public KahunaTransaction IfValue(string key, byte[] value, CompareOperator op = CompareOperator.Equal)
        {
            if (value == null) throw new ArgumentNullException(nameof(value));
            return When(0, op, key, value, 0);
        }

        /// <summary>Requires the value of <paramref name="key"/> to relate to the UTF-8 text <paramref name="value"/>.</summary>
        public KahunaTransaction IfValue(string key, string value, CompareOperator op = CompareOperator.Equal)
        {
            return IfValue(key, Interop.Utf8(value, nameof(value)), op);
        }

        /// <summary>Requires the revision of <paramref name="key"/> (0: missing) to relate to <paramref name="revision"/>.</summary>
        public KahunaTransaction IfRevision(string key, long revision, CompareOperator op = CompareOperator.Equal)
        {
            return When(1, op, key, null, revision);
        }

        /// <summary>Requires the create revision of <paramref name="key"/> to relate to <paramref name="revision"/>.</summary>
        public KahunaTransaction IfCreateRevision(string key, long revision, CompareOperator op = CompareOperator.Equal)
        {
            return When(2, op, key, null, revision);
        }

        /// <summary>Requires the version (writes since creation) of <paramref name="key"/> to relate to <paramref name="version"/>.</summary>
        public KahunaTransaction IfVersion(string key, long version, CompareOperator op = CompareOperator.Equal)
        {
            return When(3, op, key, null, version);
        }

        /// <summary>Requires <paramref name="key"/> to exist.</summary>
        public KahunaTransaction IfExists(string key) { return When(4, CompareOperator.Equal, key, null, 0); }

        /// <summary>Requires <paramref name="key"/> not to exist.</summary>
        public KahunaTransaction IfMissing(string key) { return When(5, CompareOperator.Equal, key, null, 0); }

        /// <summary>Requires the persistent lock on <paramref name="resource"/> to be held with a token
        /// that relates to <paramref name="fencingToken"/>.</summary>
        public KahunaTransaction IfLockToken(string resource, long fencingToken, CompareOperator op = CompareOperator.Equal)
        {
            return When(6, op, resource, null, fencingToken);
        }

        /// <summary>Applies the transaction only while <paramref name="heldLock"/> is held with its token
        /// (otherwise it fails with <see cref="KahunaErrorCode.Fenced"/>).</summary>
        public KahunaTransaction FencedBy(KahunaLock heldLock)
        {
            if (heldLock == null) throw new ArgumentNullException(nameof(heldLock));
            return FencedBy(heldLock.Resource, heldLock.FencingToken);
        }

        /// <summary>Applies the transaction only while <paramref name="resource"/> is locked with <paramref name="fencingToken"/>.</summary>
        public KahunaTransaction FencedBy(string resource, long fencingToken)
        {
            FenceResource = Interop.Utf8(resource, nameof(resource));
            FenceToken = fencingToken;
            return this;
        }

        /// <summary>When the compares hold: set <paramref name="key"/> (expiring after <paramref name="expiry"/>, zero: never).</summary>
        public KahunaTransaction ThenSet(string key, byte[] value, TimeSpan expiry = default)
        {
            if (value == null) throw new ArgumentNullException(nameof(value));
            return Add(true, 0, key, value, expiry);
        }

        /// <summary>When the compares hold: set <paramref name="key"/> to UTF-8 text.</summary>
        public KahunaTransaction ThenSet(string key, string value, TimeSpan expiry = default)
        {
            return ThenSet(key, Interop.Utf8(value, nameof(value)), expiry);
        }

        /// <summary>When the compares hold: delete <paramref name="key"/>.</summary>
        public KahunaTransaction ThenDelete(string key) { return Add(true, 1, key, null, TimeSpan.Zero); }

        /// <summary>When the compares hold: read <paramref name="key"/> (in the result).</summary>
        public KahunaTransaction ThenGet(string key) { return Add(true, 2, key, null, TimeSpan.Zero); }

        /// <summary>When the compares hold: give <paramref name="key"/> a new expiry (zero: never).</summary>
        public KahunaTransaction ThenExtend(string key, TimeSpan expiry) { return Add(true, 3, key, null, expiry); }

        /// <summary>When a compare fails: set <paramref name="key"/>.</summary>
        public KahunaTransaction ElseSet(string key, byte[] value, TimeSpan expiry = default)
        {
            if (value == null) throw new ArgumentNullException(nameof(value));
            return Add(false, 0, key, value, expiry);
        }

        /// <summary>When a compare fails: set <paramref name="key"/> to UTF-8 text.</summary>
        public KahunaTransaction ElseSet(string key, string value, TimeSpan expiry = default)
        {
            return ElseSet(key, Interop.Utf8(value, nameof(value)), expiry);
        }

        /// <summary>When a compare fails: delete <paramref name="key"/>.</summary>
        public KahunaTransaction ElseDelete(string key) { return Add(false, 1, key, null, TimeSpan.Zero); }

        /// <summary>When a compare fails: read <paramref name="key"/> (in the result).</summary>
        public KahunaTransaction ElseGet(string key) { return Add(false, 2, key, null, TimeSpan.Zero); }

        /// <summary>Commits the transaction atomically.</summary>
        public Task<KahunaTransactionResult> Commit(CancellationToken cancellationToken = default)
        {
            return _client.Commit(this, cancellationToken);
        }

        internal Cmp[] NativeCompares() { return _compares.ToArray(); }
        internal Op[] NativeOps(bool then) { return (then ? _then : _else).ToArray(); }

        internal Native.KahunaCompare[] Fill(Cmp[] compares, Pins pins)
        {
            var a = new Native.KahunaCompare[compares.Length];
            for (int i = 0; i < compares.Length; i++)
            {
                a[i].kind = compares[i].Kind;
                a[i].op = compares[i].Op;
                a[i].key = pins.Bytes(compares[i].Key);
                a[i].value = pins.Bytes(compares[i].Value);
                a[i].number = (ulong)compares[i].Number;
            }
            return a;
        }

        internal Native.KahunaTxnOp[] Fill(Op[] ops, Pins pins)
        {
            var a = new Native.KahunaTxnOp[ops.Length];
            for (int i = 0; i < ops.Length; i++)
            {
                a[i].kind = ops[i].Kind;
                a[i].key = pins.Bytes(ops[i].Key);
                a[i].value = pins.Bytes(ops[i].Value);
                a[i].ttl_ms = ops[i].Ttl;
            }
            return a;
        }
    }

    /// <summary>The outcome of a transaction.</summary>
    public sealed class KahunaTransactionResult
    {
        internal KahunaTransactionResult(bool succeeded, long revision, IReadOnlyList<KahunaKeyValue> results)
        {
            Succeeded = succeeded;
            Revision = revision;
            Results = results;
        }

        /// <summary>Whether every compare held (the <c>Then*</c> operations ran).</summary>
        public bool Succeeded { get; }
        /// <summary>The store revision after the transaction.</summary>
        public long Revision { get; }
        /// <summary>One entry per operation of the branch that ran; gets carry the key read.</summary>
        public IReadOnlyList<KahunaKeyValue> Results { get; }
    }
}
