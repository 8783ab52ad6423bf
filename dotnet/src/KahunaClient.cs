using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Tasks;
using Kahuna.Client.Native;
using Kahuna.Client.RateLimiting;

namespace Kahuna.Client
{
    /// <summary>
    /// A connection to a Kahuna cluster: locks with fencing tokens, a key/value store with
    /// revisions and compare-and-set, transactions and sequences. Every call goes through
    /// Kahuna's Rust core client, which finds the leader, fails over between members and
    /// retries only what is safe to retry. Thread-safe; create one per application.
    /// </summary>
    /// <example>
    /// <code>
    /// var client = new KahunaClient(new[] { "10.0.0.1:2070", "10.0.0.2:2070", "10.0.0.3:2070" });
    /// var l = await client.GetOrCreateLock("jobs/nightly", TimeSpan.FromSeconds(10));
    /// try { if (l.IsAcquired) { /* fenced work with l.FencingToken */ } }
    /// finally { await l.DisposeAsync(); }
    /// </code>
    /// </example>
    public sealed class KahunaClient : IDisposable, IAsyncDisposable
    {
        private readonly ClientHandle _handle;
        private readonly InFlight _inFlight = new InFlight();
        private int _disposed;

        /// <summary>Creates a client for one member (<c>host:port</c> or <c>http://host:port</c>);
        /// the others are learned from it.</summary>
        public KahunaClient(string url) : this(new[] { url }, null)
        {
        }

        /// <summary>Creates a client for one member (<c>host:port</c> or <c>http://host:port</c>) with
        /// <paramref name="options"/> (null: the defaults); the other members are learned from it.</summary>
        public KahunaClient(string url, KahunaClientOptions options) : this(new[] { url }, options)
        {
        }

        /// <summary>
        /// Creates a client for the cluster at <paramref name="endpoints"/> (any subset of its
        /// members, <c>host:port</c>). No I/O happens here: connections open on the first call.
        /// </summary>
        /// <exception cref="KahunaException">The endpoints or options are unusable.</exception>
        public unsafe KahunaClient(string[] endpoints, KahunaClientOptions options = null)
        {
            if (endpoints == null) throw new ArgumentNullException(nameof(endpoints));
            options = options ?? new KahunaClientOptions();
            var list = new Native.KahunaBytes[endpoints.Length];
            Native.KahunaClient* client = null;
            var error = new Native.KahunaBytes();
            int status;
            using (var pins = new Pins())
            {
                for (int i = 0; i < endpoints.Length; i++) list[i] = pins.Bytes(Interop.Utf8(endpoints[i], nameof(endpoints)));
                var o = new Native.KahunaClientOptions();
                o.timeout_ms = Interop.Millis(options.OperationTimeout, "OperationTimeout");
                o.attempt_timeout_ms = Interop.Millis(options.AttemptTimeout, "AttemptTimeout");
                o.connect_timeout_ms = Interop.Millis(options.ConnectTimeout, "ConnectTimeout");
                o.client_id = pins.Bytes(options.ClientId == null ? null : Interop.Utf8(options.ClientId, "ClientId"));
                o.ca_pem = pins.Bytes(Interop.OptionalUtf8(options.CaCertificatePem));
                o.client_cert_pem = pins.Bytes(Interop.OptionalUtf8(options.ClientCertificatePem));
                o.client_key_pem = pins.Bytes(Interop.OptionalUtf8(options.ClientCertificateKeyPem));
                string[] thumbprints = options.TrustedServerCertificateThumbprints ?? new string[0];
                var pinList = new Native.KahunaBytes[thumbprints.Length];
                for (int i = 0; i < thumbprints.Length; i++)
                    pinList[i] = pins.Bytes(Interop.Utf8(thumbprints[i], "TrustedServerCertificateThumbprints"));
                o.pins = pinList.Length == 0 ? null : (Native.KahunaBytes*)pins.Array(pinList);
                o.pins_len = new UIntPtr((uint)pinList.Length);
                o.insecure_skip_verify = (byte)(options.AllowInsecureCertificateValidation ? 1 : 0);
                o.token = pins.Bytes(Interop.OptionalUtf8(options.Token));
                var eps = list.Length == 0 ? null : (Native.KahunaBytes*)pins.Array(list);
                status = NativeMethods.kahuna_client_new(eps, new UIntPtr((uint)list.Length), &o, &client, &error);
            }
            if (status != NativeMethods.KAHUNA_STATUS_OK)
            {
                string message = Interop.Text(error);
                NativeMethods.kahuna_bytes_free(error);
                throw new KahunaException((KahunaErrorCode)status, message);
            }
            _handle = new ClientHandle((IntPtr)client);
            _inFlight.Logger = options.Logger;
            Interop.Log(options.Logger, KahunaLogLevel.Debug, "kahuna client created for " + string.Join(",", endpoints));
        }

        /// <summary>
        /// Native calls of every client in this process whose completion has not arrived yet
        /// (each holds one GCHandle). Includes the lost-signal watch of each live lock. For
        /// diagnostics and leak tests.
        /// </summary>
        public static long PendingNativeCalls => Interop.Live;

        internal InFlight InFlight => _inFlight;
        internal ClientHandle Handle => _handle;

        private unsafe Task<T> Run<T>(ResultDecoder<T> decode, CancellationToken token, NativeStart start)
        {
            if (Volatile.Read(ref _disposed) != 0) throw new ObjectDisposedException(nameof(KahunaClient));
            return Calls.Run(_handle, _inFlight, decode, token, start);
        }

        // ---- locks -----------------------------------------------------------------------

        /// <summary>
        /// Tries to take the lock on <paramref name="resource"/> for <paramref name="expiry"/>,
        /// renewing it in the background while held. With a <paramref name="wait"/>, waits up to
        /// <paramref name="wait"/>: a persistent lock's waiters take places in the server's queue and
        /// are granted in arrival order, woken by the server; an ephemeral lock is tried again every
        /// <paramref name="retry"/>. Not acquiring is
        /// <see cref="KahunaLock.IsAcquired"/> == false, not an exception.
        /// </summary>
        /// <param name="resource">The lock's name.</param>
        /// <param name="expiry">Lease length (TTL); renewed at about a third of it.</param>
        /// <param name="wait">How long to keep trying while someone else holds it (zero: one attempt).</param>
        /// <param name="retry">Pause between attempts at an ephemeral lock (zero: 100 ms); persistent
        /// locks wait in the server's queue instead.</param>
        /// <param name="durability">Persistent (replicated) or ephemeral (leader memory).</param>
        /// <param name="cancellationToken">Cancels the attempt.</param>
        /// <returns>The lock; dispose it (<c>await l.DisposeAsync()</c>) to release it.</returns>
        public unsafe Task<KahunaLock> GetOrCreateLock(string resource, TimeSpan expiry, TimeSpan wait = default,
            TimeSpan retry = default, LockDurability durability = LockDurability.Persistent,
            CancellationToken cancellationToken = default)
        {
            return Lock(resource, null, expiry, wait, retry, durability, cancellationToken);
        }

        /// <summary>
        /// Like <see cref="GetOrCreateLock(string, TimeSpan, TimeSpan, TimeSpan, LockDurability, CancellationToken)"/>,
        /// taking the lock as <paramref name="owner"/> (UTF-8, not empty) instead of a name unique to
        /// this attempt. Locking again as the current owner keeps the grant and its fencing token, and a
        /// process that restarts can release or extend the lock by owner
        /// (<see cref="Unlock(string, string, LockDurability, CancellationToken)"/>,
        /// <see cref="TryExtendLock(string, string, TimeSpan, LockDurability, CancellationToken)"/>).
        /// </summary>
        public unsafe Task<KahunaLock> GetOrCreateLock(string resource, string owner, TimeSpan expiry,
            TimeSpan wait = default, TimeSpan retry = default, LockDurability durability = LockDurability.Persistent,
            CancellationToken cancellationToken = default)
        {
            if (string.IsNullOrEmpty(owner)) throw new ArgumentException("must not be empty", nameof(owner));
            return Lock(resource, Interop.Utf8(owner, nameof(owner)), expiry, wait, retry, durability, cancellationToken);
        }

        /// <summary>Like <see cref="GetOrCreateLock(string, string, TimeSpan, TimeSpan, TimeSpan, LockDurability, CancellationToken)"/>
        /// with a byte owner (Kahuna 1.x's <see cref="KahunaLock.Owner"/>); it must be valid UTF-8.</summary>
        public unsafe Task<KahunaLock> GetOrCreateLock(string resource, byte[] owner, TimeSpan expiry,
            TimeSpan wait = default, TimeSpan retry = default, LockDurability durability = LockDurability.Persistent,
            CancellationToken cancellationToken = default)
        {
            if (owner == null || owner.Length == 0) throw new ArgumentException("must not be empty", nameof(owner));
            return Lock(resource, owner, expiry, wait, retry, durability, cancellationToken);
        }

        private unsafe Task<KahunaLock> Lock(string resource, byte[] owner, TimeSpan expiry, TimeSpan wait,
            TimeSpan retry, LockDurability durability, CancellationToken cancellationToken)
        {
            byte[] r = Interop.Utf8(resource, nameof(resource));
            ulong ttl = Interop.Millis(expiry, nameof(expiry));
            ulong waitMs = Interop.Millis(wait, nameof(wait));
            ulong retryMs = Interop.Millis(retry, nameof(retry));
            return Run(LockResult(resource, durability), cancellationToken, delegate(IntPtr h, Native.KahunaCancel* cancel, ulong ud)
            {
                using (var pins = new Pins())
                {
                    var req = new KahunaLockRequest();
                    req.resource = pins.Bytes(r);
                    req.ttl_ms = ttl;
                    req.wait_ms = waitMs;
                    req.retry_ms = retryMs;
                    req.durability = Interop.Tier(durability);
                    req.owner = pins.Bytes(owner);
                    NativeMethods.kahuna_lock_acquire((Native.KahunaClient*)h, &req, cancel, ud, Interop.LockAcquire);
                }
            });
        }

        /// <summary>Decodes an acquisition's answer (a lock or a semaphore's permit) into a <see cref="KahunaLock"/>.</summary>
        private unsafe ResultDecoder<KahunaLock> LockResult(string resource, LockDurability durability)
        {
            var client = this;
            return delegate(int status, Native.KahunaResult* res)
            {
                var handle = new LockHandle((IntPtr)res->@lock);
                var holder = Interop.LockInfo(resource, &res->lock_info, durability);
                var l = new KahunaLock(client, handle, resource, durability, res->succeeded != 0, holder);
                string what = holder != null && holder.IsSemaphore ? "permit of semaphore " : "lock ";
                Interop.Log(client._inFlight.Logger, KahunaLogLevel.Debug, l.IsAcquired
                    ? what + resource + " acquired with fencing token " + l.FencingToken
                    : what + resource + " not acquired" + (holder == null ? "" : holder.IsSemaphore
                        ? ": " + holder.Holders + " of " + holder.Permits + " permits held"
                        : ": held by " + holder.OwnerAsString));
                return l;
            };
        }

        /// <summary>
        /// Takes one of the <paramref name="permits"/> permits of the semaphore <paramref name="name"/>:
        /// up to <paramref name="permits"/> holders at once, each permit with a lease of its own (renewed in
        /// the background at about a third of <paramref name="expiry"/>, like a lock's) and a fencing token of
        /// its own, unique and increasing, that fences writes exactly like a lock's
        /// (<see cref="SetKeyValueFenced(string, string, KahunaLock, TimeSpan, CancellationToken)"/>,
        /// <see cref="KahunaTransaction.FencedBy(KahunaLock)"/>). With a <paramref name="wait"/>, waits in the
        /// semaphore's queue, granted in arrival order as permits free up. The permit is a
        /// <see cref="KahunaLock"/>: <see cref="KahunaLock.IsAcquired"/> (false when every permit stayed held,
        /// not an exception), <see cref="KahunaLock.FencingToken"/>, <see cref="KahunaLock.Lost"/>, and
        /// <see cref="KahunaLock.DisposeAsync"/> gives it back.
        /// Semaphores are persistent. A name is a lock or a semaphore, and everyone asks with the same
        /// <paramref name="permits"/> while anyone holds or waits for it: asking with another number, or
        /// taking the semaphore as a lock, fails with <see cref="KahunaErrorCode.InvalidArgument"/>. A
        /// semaphore of 1 permit is the lock <paramref name="name"/>.
        /// </summary>
        /// <param name="name">The semaphore's name (a lock's name space).</param>
        /// <param name="permits">Its number of permits: 1 to 10,000.</param>
        /// <param name="expiry">Each permit's lease (TTL); renewed at about a third of it.</param>
        /// <param name="wait">How long to wait for a permit while all are held (zero: one attempt).</param>
        /// <param name="retry">Pause between attempts when the wait is not queued on the server (zero: the default).</param>
        /// <param name="cancellationToken">Cancels the attempt (and gives back its place in the queue).</param>
        /// <returns>The permit; dispose it (<c>await p.DisposeAsync()</c>) to give it back.</returns>
        /// <exception cref="ArgumentOutOfRangeException"><paramref name="permits"/> is not 1 to 10,000.</exception>
        /// <example><code>
        /// var permit = await client.AcquirePermit("gpu-pool", 4, TimeSpan.FromSeconds(10), TimeSpan.FromMinutes(5));
        /// try { if (permit.IsAcquired) await Train(permit.FencingToken); }
        /// finally { await permit.DisposeAsync(); }
        /// </code></example>
        public unsafe Task<KahunaLock> AcquirePermit(string name, int permits, TimeSpan expiry, TimeSpan wait = default,
            TimeSpan retry = default, CancellationToken cancellationToken = default)
        {
            if (permits < 1 || permits > MaxPermits)
                throw new ArgumentOutOfRangeException(nameof(permits), permits, "a semaphore has 1 to 10,000 permits");
            byte[] n = Interop.Utf8(name, nameof(name));
            ulong ttl = Interop.Millis(expiry, nameof(expiry));
            ulong waitMs = Interop.Millis(wait, nameof(wait));
            ulong retryMs = Interop.Millis(retry, nameof(retry));
            return Run(LockResult(name, LockDurability.Persistent), cancellationToken,
                delegate(IntPtr h, Native.KahunaCancel* cancel, ulong ud)
                {
                    using (var pins = new Pins())
                    {
                        var req = new KahunaPermitRequest();
                        req.name = pins.Bytes(n);
                        req.permits = (uint)permits;
                        req.ttl_ms = ttl;
                        req.wait_ms = waitMs;
                        req.retry_ms = retryMs;
                        req.owner = pins.Bytes(null);
                        NativeMethods.kahuna_lock_acquire_permit((Native.KahunaClient*)h, &req, cancel, ud,
                            Interop.LockAcquirePermit);
                    }
                });
        }

        /// <summary>The most permits a semaphore has (<see cref="AcquirePermit"/>).</summary>
        public const int MaxPermits = 10000;

        /// <summary>Like <see cref="GetOrCreateLock(string, TimeSpan, TimeSpan, TimeSpan, LockDurability, CancellationToken)"/>
        /// with times in milliseconds.</summary>
        public unsafe Task<KahunaLock> GetOrCreateLock(string resource, int expiryTime = 30000, int waitTime = 0,
            int retryTime = 0, LockDurability durability = LockDurability.Persistent,
            CancellationToken cancellationToken = default)
        {
            return GetOrCreateLock(resource, TimeSpan.FromMilliseconds(expiryTime), TimeSpan.FromMilliseconds(waitTime),
                TimeSpan.FromMilliseconds(retryTime), durability, cancellationToken);
        }

        /// <summary>Makes one attempt to take the lock on <paramref name="resource"/>.</summary>
        public unsafe Task<KahunaLock> GetOrCreateLock(string resource, TimeSpan expiry, LockDurability durability,
            CancellationToken cancellationToken = default)
        {
            return GetOrCreateLock(resource, expiry, TimeSpan.Zero, TimeSpan.Zero, durability, cancellationToken);
        }

        /// <summary>Makes one attempt to take the lock on <paramref name="resource"/> for
        /// <paramref name="expiry"/> milliseconds (Kahuna 1.x's overload).</summary>
        public unsafe Task<KahunaLock> GetOrCreateLock(string resource, int expiry, LockDurability durability,
            CancellationToken cancellationToken = default)
        {
            return GetOrCreateLock(resource, TimeSpan.FromMilliseconds(expiry), TimeSpan.Zero, TimeSpan.Zero, durability,
                cancellationToken);
        }

        /// <summary>
        /// Renews the lease of the lock on <paramref name="resource"/> for <paramref name="duration"/> if
        /// <paramref name="owner"/> holds it, without a <see cref="KahunaLock"/> (for example after a
        /// restart, with an owner given to <see cref="GetOrCreateLock(string, string, TimeSpan, TimeSpan, TimeSpan, LockDurability, CancellationToken)"/>).
        /// Nothing renews it afterwards. Returns (true, the grant's fencing token, unchanged) or, when
        /// the lock is free or held by someone else, (false, 0); Kahuna 1.x threw in that case.
        /// </summary>
        public unsafe Task<(bool, long)> TryExtendLock(string resource, string owner, TimeSpan duration,
            LockDurability durability = LockDurability.Persistent, CancellationToken cancellationToken = default)
        {
            return ExtendByOwner(resource, Interop.Utf8(owner, nameof(owner)), duration, durability, cancellationToken);
        }

        /// <summary>Like <see cref="TryExtendLock(string, string, TimeSpan, LockDurability, CancellationToken)"/> in milliseconds.</summary>
        public unsafe Task<(bool, long)> TryExtendLock(string resource, string owner, int durationMs,
            LockDurability durability = LockDurability.Persistent, CancellationToken cancellationToken = default)
        {
            return TryExtendLock(resource, owner, TimeSpan.FromMilliseconds(durationMs), durability, cancellationToken);
        }

        /// <summary>Like <see cref="TryExtendLock(string, string, TimeSpan, LockDurability, CancellationToken)"/> with a UTF-8 byte owner.</summary>
        public unsafe Task<(bool, long)> TryExtendLock(string resource, byte[] owner, TimeSpan duration,
            LockDurability durability = LockDurability.Persistent, CancellationToken cancellationToken = default)
        {
            if (owner == null) throw new ArgumentNullException(nameof(owner));
            return ExtendByOwner(resource, owner, duration, durability, cancellationToken);
        }

        /// <summary>Like <see cref="TryExtendLock(string, byte[], TimeSpan, LockDurability, CancellationToken)"/> in milliseconds.</summary>
        public unsafe Task<(bool, long)> TryExtendLock(string resource, byte[] owner, int durationMs,
            LockDurability durability = LockDurability.Persistent, CancellationToken cancellationToken = default)
        {
            return TryExtendLock(resource, owner, TimeSpan.FromMilliseconds(durationMs), durability, cancellationToken);
        }

        private unsafe Task<(bool, long)> ExtendByOwner(string resource, byte[] owner, TimeSpan duration,
            LockDurability durability, CancellationToken cancellationToken)
        {
            byte[] r = Interop.Utf8(resource, nameof(resource));
            if (owner.Length == 0) throw new ArgumentException("must not be empty", nameof(owner));
            ulong ttl = Interop.Millis(duration, nameof(duration));
            return Run(delegate(int status, Native.KahunaResult* res)
            {
                bool extended = res->succeeded != 0;
                return (extended, extended ? (long)res->lock_info.fencing_token : 0L);
            }, cancellationToken, delegate(IntPtr h, Native.KahunaCancel* cancel, ulong ud)
            {
                using (var pins = new Pins())
                {
                    var req = new KahunaLockExtendByOwnerRequest();
                    req.resource = pins.Bytes(r);
                    req.owner = pins.Bytes(owner);
                    req.ttl_ms = ttl;
                    req.durability = Interop.Tier(durability);
                    NativeMethods.kahuna_lock_extend_by_owner((Native.KahunaClient*)h, &req, cancel, ud, Interop.LockExtendByOwner);
                }
            });
        }

        /// <summary>
        /// Releases the lock on <paramref name="resource"/> if <paramref name="owner"/> holds it, without a
        /// <see cref="KahunaLock"/>: for a process that restarted and lost its lock object. Returns
        /// whether the server released it (false when it was free or held by someone else).
        /// </summary>
        public unsafe Task<bool> Unlock(string resource, string owner, LockDurability durability = LockDurability.Persistent,
            CancellationToken cancellationToken = default)
        {
            return UnlockByOwner(resource, Interop.Utf8(owner, nameof(owner)), durability, cancellationToken);
        }

        /// <summary>Like <see cref="Unlock(string, string, LockDurability, CancellationToken)"/> with a UTF-8 byte owner.</summary>
        public unsafe Task<bool> Unlock(string resource, byte[] owner, LockDurability durability = LockDurability.Persistent,
            CancellationToken cancellationToken = default)
        {
            if (owner == null) throw new ArgumentNullException(nameof(owner));
            return UnlockByOwner(resource, owner, durability, cancellationToken);
        }

        private unsafe Task<bool> UnlockByOwner(string resource, byte[] owner, LockDurability durability,
            CancellationToken cancellationToken)
        {
            byte[] r = Interop.Utf8(resource, nameof(resource));
            if (owner.Length == 0) throw new ArgumentException("must not be empty", nameof(owner));
            return Run(delegate(int status, Native.KahunaResult* res) { return res->succeeded != 0; },
                cancellationToken, delegate(IntPtr h, Native.KahunaCancel* cancel, ulong ud)
                {
                    using (var pins = new Pins())
                    {
                        var req = new KahunaUnlockRequest();
                        req.resource = pins.Bytes(r);
                        req.owner = pins.Bytes(owner);
                        req.durability = Interop.Tier(durability);
                        NativeMethods.kahuna_lock_unlock((Native.KahunaClient*)h, &req, cancel, ud, Interop.LockUnlock);
                    }
                });
        }

        /// <summary>Who holds the lock on <paramref name="resource"/> now (null when nobody does).</summary>
        public unsafe Task<KahunaLockInfo> GetLockInfo(string resource, LockDurability durability = LockDurability.Persistent,
            CancellationToken cancellationToken = default)
        {
            byte[] r = Interop.Utf8(resource, nameof(resource));
            return Run(delegate(int status, Native.KahunaResult* res)
            {
                return Interop.LockInfo(resource, &res->lock_info, durability);
            }, cancellationToken, delegate(IntPtr h, Native.KahunaCancel* cancel, ulong ud)
            {
                using (var pins = new Pins())
                {
                    var req = new KahunaLockInfoRequest();
                    req.resource = pins.Bytes(r);
                    req.durability = Interop.Tier(durability);
                    NativeMethods.kahuna_lock_get_info((Native.KahunaClient*)h, &req, cancel, ud, Interop.LockGetInfo);
                }
            });
        }

        // ---- key/value -------------------------------------------------------------------

        private unsafe Task<KahunaKeyValue> Set(string key, byte[] value, TimeSpan expiry, KahunaSetCondition condition, byte[] compareValue,
            long compareRevision, KeyValueDurability durability, string fenceResource, long fenceToken,
            CancellationToken cancellationToken)
        {
            byte[] k = Interop.Utf8(key, nameof(key));
            if (value == null) throw new ArgumentNullException(nameof(value));
            ulong ttl = Interop.Millis(expiry, nameof(expiry));
            byte[] fence = fenceResource == null ? null : Interop.Utf8(fenceResource, "fence");
            return Run(delegate(int status, Native.KahunaResult* res)
            {
                return Interop.KeyValue(&res->kv, res->succeeded != 0, (long)res->revision, durability);
            }, cancellationToken, delegate(IntPtr h, Native.KahunaCancel* cancel, ulong ud)
            {
                using (var pins = new Pins())
                {
                    var req = new KahunaSetRequest();
                    req.key = pins.Bytes(k);
                    req.value = pins.Bytes(value);
                    req.ttl_ms = ttl;
                    req.condition = (int)condition;
                    req.compare_value = pins.Bytes(compareValue);
                    req.compare_revision = (ulong)compareRevision;
                    req.durability = Interop.Tier(durability);
                    if (fence != null)
                    {
                        req.fence.present = 1;
                        req.fence.resource = pins.Bytes(fence);
                        req.fence.token = (ulong)fenceToken;
                        req.fence.durability = NativeMethods.KAHUNA_DURABILITY_PERSISTENT;
                    }
                    NativeMethods.kahuna_kv_set((Native.KahunaClient*)h, &req, cancel, ud, Interop.KvSet);
                }
            });
        }

        /// <summary>
        /// Sets <paramref name="key"/> to <paramref name="value"/>, expiring after
        /// <paramref name="expiry"/> (zero: never), when <paramref name="flags"/> allows.
        /// A condition that does not hold gives <c>Success == false</c>, not an exception.
        /// </summary>
        /// <returns>The key as written (or the current key when the condition failed).</returns>
        public unsafe Task<KahunaKeyValue> SetKeyValue(string key, byte[] value, TimeSpan expiry,
            KeyValueFlags flags = KeyValueFlags.Set, KeyValueDurability durability = KeyValueDurability.Persistent,
            CancellationToken cancellationToken = default)
        {
            return Set(key, value, expiry, Interop.Condition(flags), null, 0, durability, null, 0, cancellationToken);
        }

        /// <summary>Sets <paramref name="key"/> to the UTF-8 text <paramref name="value"/>.</summary>
        public unsafe Task<KahunaKeyValue> SetKeyValue(string key, string value, TimeSpan expiry,
            KeyValueFlags flags = KeyValueFlags.Set, KeyValueDurability durability = KeyValueDurability.Persistent,
            CancellationToken cancellationToken = default)
        {
            return SetKeyValue(key, Interop.Utf8(value, nameof(value)), expiry, flags, durability, cancellationToken);
        }

        /// <summary>Sets <paramref name="key"/>, expiring after <paramref name="expiryTime"/> ms (0: never).</summary>
        public unsafe Task<KahunaKeyValue> SetKeyValue(string key, byte[] value, int expiryTime = 0,
            KeyValueFlags flags = KeyValueFlags.Set, KeyValueDurability durability = KeyValueDurability.Persistent,
            CancellationToken cancellationToken = default)
        {
            return SetKeyValue(key, value, TimeSpan.FromMilliseconds(expiryTime), flags, durability, cancellationToken);
        }

        /// <summary>Sets <paramref name="key"/> to UTF-8 text, expiring after <paramref name="expiryTime"/> ms (0: never).</summary>
        public unsafe Task<KahunaKeyValue> SetKeyValue(string key, string value, int expiryTime = 0,
            KeyValueFlags flags = KeyValueFlags.Set, KeyValueDurability durability = KeyValueDurability.Persistent,
            CancellationToken cancellationToken = default)
        {
            return SetKeyValue(key, Interop.Utf8(value, nameof(value)), TimeSpan.FromMilliseconds(expiryTime), flags,
                durability, cancellationToken);
        }

        /// <summary>Kahuna 1.x's set without revision bookkeeping. Every write here gets a revision, so
        /// this is <see cref="SetKeyValue(string, byte[], int, KeyValueFlags, KeyValueDurability, CancellationToken)"/>.</summary>
        public Task<KahunaKeyValue> SetKeyValueNoRevision(string key, byte[] value, int expiryTime = 0,
            KeyValueDurability durability = KeyValueDurability.Persistent, CancellationToken cancellationToken = default)
        {
            return SetKeyValue(key, value, expiryTime, KeyValueFlags.SetNoRevision, durability, cancellationToken);
        }

        /// <summary>
        /// Sets <paramref name="key"/> only while a lock is held with <paramref name="fencingToken"/>:
        /// the server itself refuses the write otherwise (<see cref="KahunaErrorCode.Fenced"/>).
        /// </summary>
        public unsafe Task<KahunaKeyValue> SetKeyValueFenced(string key, byte[] value, string lockResource, long fencingToken,
            TimeSpan expiry = default, CancellationToken cancellationToken = default)
        {
            if (lockResource == null) throw new ArgumentNullException(nameof(lockResource));
            return Set(key, value, expiry, KahunaSetCondition.Always, null, 0, KeyValueDurability.Persistent, lockResource, fencingToken,
                cancellationToken);
        }

        /// <summary>Sets <paramref name="key"/> only while <paramref name="heldLock"/> is held with its token.</summary>
        public unsafe Task<KahunaKeyValue> SetKeyValueFenced(string key, string value, KahunaLock heldLock,
            TimeSpan expiry = default, CancellationToken cancellationToken = default)
        {
            if (heldLock == null) throw new ArgumentNullException(nameof(heldLock));
            return SetKeyValueFenced(key, Interop.Utf8(value, nameof(value)), heldLock.Resource, heldLock.FencingToken,
                expiry, cancellationToken);
        }

        /// <summary>
        /// Compare-and-set by value: sets <paramref name="key"/> only when its value is
        /// <paramref name="compareValue"/>. <c>Success == false</c> (with the current value) otherwise.
        /// </summary>
        public unsafe Task<KahunaKeyValue> TryCompareValueAndSetKeyValue(string key, byte[] value, byte[] compareValue,
            TimeSpan expiry, KeyValueDurability durability = KeyValueDurability.Persistent,
            CancellationToken cancellationToken = default)
        {
            if (compareValue == null) throw new ArgumentNullException(nameof(compareValue));
            return Set(key, value, expiry, KahunaSetCondition.IfValue, compareValue, 0, durability, null, 0, cancellationToken);
        }

        /// <summary>Compare-and-set by value with UTF-8 text.</summary>
        public unsafe Task<KahunaKeyValue> TryCompareValueAndSetKeyValue(string key, string value, string compareValue,
            TimeSpan expiry, KeyValueDurability durability = KeyValueDurability.Persistent,
            CancellationToken cancellationToken = default)
        {
            return TryCompareValueAndSetKeyValue(key, Interop.Utf8(value, nameof(value)),
                Interop.Utf8(compareValue, nameof(compareValue)), expiry, durability, cancellationToken);
        }

        /// <summary>
        /// Compare-and-set by revision: sets <paramref name="key"/> only when its revision is
        /// <paramref name="compareRevision"/> (0: only when it does not exist).
        /// </summary>
        public unsafe Task<KahunaKeyValue> TryCompareRevisionAndSetKeyValue(string key, byte[] value, long compareRevision,
            TimeSpan expiry, KeyValueDurability durability = KeyValueDurability.Persistent,
            CancellationToken cancellationToken = default)
        {
            return Set(key, value, expiry, KahunaSetCondition.IfRevision, null, compareRevision, durability, null, 0, cancellationToken);
        }

        /// <summary>Compare-and-set by revision with UTF-8 text.</summary>
        public unsafe Task<KahunaKeyValue> TryCompareRevisionAndSetKeyValue(string key, string value, long compareRevision,
            TimeSpan expiry, KeyValueDurability durability = KeyValueDurability.Persistent,
            CancellationToken cancellationToken = default)
        {
            return TryCompareRevisionAndSetKeyValue(key, Interop.Utf8(value, nameof(value)), compareRevision, expiry,
                durability, cancellationToken);
        }

        /// <summary>Compare-and-set by value, expiring after <paramref name="expiryTime"/> ms (0: never).
        /// As in Kahuna 1.x, the byte[] form defaults to a 30 s expiry and the string form to none.</summary>
        public unsafe Task<KahunaKeyValue> TryCompareValueAndSetKeyValue(string key, byte[] value, byte[] compareValue,
            int expiryTime = 30000, KeyValueDurability durability = KeyValueDurability.Persistent,
            CancellationToken cancellationToken = default)
        {
            return TryCompareValueAndSetKeyValue(key, value, compareValue, TimeSpan.FromMilliseconds(expiryTime), durability,
                cancellationToken);
        }

        /// <summary>Compare-and-set by value with UTF-8 text, expiring after <paramref name="expiryTime"/> ms (0: never).</summary>
        public unsafe Task<KahunaKeyValue> TryCompareValueAndSetKeyValue(string key, string value, string compareValue,
            int expiryTime = 0, KeyValueDurability durability = KeyValueDurability.Persistent,
            CancellationToken cancellationToken = default)
        {
            return TryCompareValueAndSetKeyValue(key, value, compareValue, TimeSpan.FromMilliseconds(expiryTime), durability,
                cancellationToken);
        }

        /// <summary>Compare-and-set by revision, expiring after <paramref name="expiryTime"/> ms (0: never).</summary>
        public unsafe Task<KahunaKeyValue> TryCompareRevisionAndSetKeyValue(string key, byte[] value, long compareRevision,
            int expiryTime = 0, KeyValueDurability durability = KeyValueDurability.Persistent,
            CancellationToken cancellationToken = default)
        {
            return TryCompareRevisionAndSetKeyValue(key, value, compareRevision, TimeSpan.FromMilliseconds(expiryTime),
                durability, cancellationToken);
        }

        /// <summary>Compare-and-set by revision with UTF-8 text, expiring after <paramref name="expiryTime"/> ms (0: never).</summary>
        public unsafe Task<KahunaKeyValue> TryCompareRevisionAndSetKeyValue(string key, string value, long compareRevision,
            int expiryTime = 0, KeyValueDurability durability = KeyValueDurability.Persistent,
            CancellationToken cancellationToken = default)
        {
            return TryCompareRevisionAndSetKeyValue(key, value, compareRevision, TimeSpan.FromMilliseconds(expiryTime),
                durability, cancellationToken);
        }

        /// <summary>The latest value of <paramref name="key"/> (linearizable). <c>Success == false</c> and
        /// <c>Value == null</c> when it does not exist.</summary>
        public unsafe Task<KahunaKeyValue> GetKeyValue(string key, KeyValueDurability durability = KeyValueDurability.Persistent,
            CancellationToken cancellationToken = default)
        {
            return GetKeyValueRevision(key, 0, durability, cancellationToken);
        }

        /// <summary>The value of <paramref name="key"/> as of <paramref name="revision"/> (0: latest),
        /// within the server's retention window.</summary>
        public unsafe Task<KahunaKeyValue> GetKeyValueRevision(string key, long revision,
            KeyValueDurability durability = KeyValueDurability.Persistent, CancellationToken cancellationToken = default)
        {
            byte[] k = Interop.Utf8(key, nameof(key));
            return Run(delegate(int status, Native.KahunaResult* res)
            {
                return Interop.KeyValue(&res->kv, res->succeeded != 0, (long)res->revision, durability);
            }, cancellationToken, delegate(IntPtr h, Native.KahunaCancel* cancel, ulong ud)
            {
                using (var pins = new Pins())
                {
                    var req = new KahunaGetRequest();
                    req.key = pins.Bytes(k);
                    req.revision = (ulong)revision;
                    req.durability = Interop.Tier(durability);
                    NativeMethods.kahuna_kv_get((Native.KahunaClient*)h, &req, cancel, ud, Interop.KvGet);
                }
            });
        }

        /// <summary>Whether <paramref name="key"/> exists (<c>Success</c>), and its revision.</summary>
        public unsafe Task<KahunaKeyValue> ExistsKeyValue(string key, KeyValueDurability durability = KeyValueDurability.Persistent,
            CancellationToken cancellationToken = default)
        {
            byte[] k = Interop.Utf8(key, nameof(key));
            return Run(delegate(int status, Native.KahunaResult* res)
            {
                return new KahunaKeyValue(key, res->succeeded != 0, (long)res->revision, null, 0, 0, null, durability);
            }, cancellationToken, delegate(IntPtr h, Native.KahunaCancel* cancel, ulong ud)
            {
                using (var pins = new Pins())
                {
                    var req = new KahunaExistsRequest();
                    req.key = pins.Bytes(k);
                    req.durability = Interop.Tier(durability);
                    NativeMethods.kahuna_kv_exists((Native.KahunaClient*)h, &req, cancel, ud, Interop.KvExists);
                }
            });
        }

        /// <summary>Deletes <paramref name="key"/>; <c>Success</c> tells whether there was one.</summary>
        public unsafe Task<KahunaKeyValue> DeleteKeyValue(string key, KeyValueDurability durability = KeyValueDurability.Persistent,
            CancellationToken cancellationToken = default)
        {
            byte[] k = Interop.Utf8(key, nameof(key));
            return Run(delegate(int status, Native.KahunaResult* res)
            {
                return new KahunaKeyValue(key, res->deleted != 0, (long)res->revision, null, 0, 0, null, durability);
            }, cancellationToken, delegate(IntPtr h, Native.KahunaCancel* cancel, ulong ud)
            {
                using (var pins = new Pins())
                {
                    var req = new KahunaDeleteRequest();
                    req.key = pins.Bytes(k);
                    req.condition = (int)KahunaSetCondition.Always;
                    req.durability = Interop.Tier(durability);
                    NativeMethods.kahuna_kv_delete((Native.KahunaClient*)h, &req, cancel, ud, Interop.KvDelete);
                }
            });
        }

        /// <summary>Gives <paramref name="key"/> a new expiry, <paramref name="expiry"/> from now
        /// (zero: never). <c>Success == false</c> when the key does not exist.</summary>
        public unsafe Task<KahunaKeyValue> ExtendKeyValue(string key, TimeSpan expiry,
            KeyValueDurability durability = KeyValueDurability.Persistent, CancellationToken cancellationToken = default)
        {
            byte[] k = Interop.Utf8(key, nameof(key));
            ulong ttl = Interop.Millis(expiry, nameof(expiry));
            return Run(delegate(int status, Native.KahunaResult* res)
            {
                return Interop.KeyValue(&res->kv, res->succeeded != 0, (long)res->revision, durability);
            }, cancellationToken, delegate(IntPtr h, Native.KahunaCancel* cancel, ulong ud)
            {
                using (var pins = new Pins())
                {
                    var req = new KahunaExtendRequest();
                    req.key = pins.Bytes(k);
                    req.ttl_ms = ttl;
                    req.durability = Interop.Tier(durability);
                    NativeMethods.kahuna_kv_extend((Native.KahunaClient*)h, &req, cancel, ud, Interop.KvExtend);
                }
            });
        }

        /// <summary>Like <see cref="ExtendKeyValue(string, TimeSpan, KeyValueDurability, CancellationToken)"/> in milliseconds.</summary>
        public unsafe Task<KahunaKeyValue> ExtendKeyValue(string key, int expiryTime,
            KeyValueDurability durability = KeyValueDurability.Persistent, CancellationToken cancellationToken = default)
        {
            return ExtendKeyValue(key, TimeSpan.FromMilliseconds(expiryTime), durability, cancellationToken);
        }

        /// <summary>
        /// The retained changes of the persistent key <paramref name="key"/>, oldest first: every
        /// write, delete and expiry within the server's retention window, at most
        /// <paramref name="limit"/> of them (0: the server's default of 100).
        /// </summary>
        public unsafe Task<KahunaKeyHistory> GetKeyValueHistory(string key, int limit = 0,
            CancellationToken cancellationToken = default)
        {
            byte[] k = Interop.Utf8(key, nameof(key));
            if (limit < 0) throw new ArgumentOutOfRangeException(nameof(limit));
            return Run(delegate(int status, Native.KahunaResult* res)
            {
                int n = checked((int)res->events_len.ToUInt64());
                var events = new List<KahunaKeyEvent>(n);
                for (int i = 0; i < n; i++)
                {
                    var e = &res->events[i];
                    KahunaKeyEventKind kind;
                    if (e->kind == NativeMethods.KAHUNA_EVENT_DELETE) kind = KahunaKeyEventKind.Delete;
                    else if (e->kind == NativeMethods.KAHUNA_EVENT_EXPIRE) kind = KahunaKeyEventKind.Expire;
                    else kind = KahunaKeyEventKind.Put;
                    events.Add(new KahunaKeyEvent(kind, (long)e->revision,
                        Interop.KeyValue(&e->kv, true, (long)e->kv.mod_revision, KeyValueDurability.Persistent)));
                }
                return new KahunaKeyHistory(key, events, (long)res->retained_from_revision, (long)res->revision);
            }, cancellationToken, delegate(IntPtr h, Native.KahunaCancel* cancel, ulong ud)
            {
                using (var pins = new Pins())
                {
                    var req = new KahunaHistoryRequest();
                    req.key = pins.Bytes(k);
                    req.limit = (uint)limit;
                    NativeMethods.kahuna_kv_history((Native.KahunaClient*)h, &req, cancel, ud, Interop.KvHistory);
                }
            });
        }

        /// <summary>
        /// One page of the keys starting with <paramref name="prefix"/>, in byte order.
        /// Pass the page's <see cref="KahunaScanPage.NextPageToken"/> for the next one.
        /// </summary>
        /// <param name="prefix">Key prefix (empty: every key).</param>
        /// <param name="limit">Page size (0: the server's default; at most 1000).</param>
        /// <param name="pageToken">Null for the first page.</param>
        /// <param name="keysOnly">Leave values out.</param>
        /// <param name="durability">The key space.</param>
        /// <param name="cancellationToken">Cancels the call.</param>
        public unsafe Task<KahunaScanPage> ScanByPrefix(string prefix, int limit = 0, byte[] pageToken = null,
            bool keysOnly = false, KeyValueDurability durability = KeyValueDurability.Persistent,
            CancellationToken cancellationToken = default)
        {
            byte[] p = Interop.Utf8(prefix, nameof(prefix));
            if (limit < 0) throw new ArgumentOutOfRangeException(nameof(limit));
            return Run(delegate(int status, Native.KahunaResult* res)
            {
                int n = checked((int)res->kvs_len.ToUInt64());
                var items = new List<KahunaKeyValue>(n);
                for (int i = 0; i < n; i++) items.Add(Interop.KeyValue(&res->kvs[i], true, (long)res->kvs[i].mod_revision, durability));
                byte[] next = Interop.Copy(res->next_page_token);
                return new KahunaScanPage(items, next.Length == 0 ? null : next, (long)res->revision);
            }, cancellationToken, delegate(IntPtr h, Native.KahunaCancel* cancel, ulong ud)
            {
                using (var pins = new Pins())
                {
                    var req = new KahunaScanRequest();
                    req.prefix = pins.Bytes(p);
                    req.page.limit = (uint)limit;
                    req.page.page_token = pins.Bytes(pageToken);
                    req.page.keys_only = (byte)(keysOnly ? 1 : 0);
                    req.page.durability = Interop.Tier(durability);
                    NativeMethods.kahuna_kv_scan((Native.KahunaClient*)h, &req, cancel, ud, Interop.KvScan);
                }
            });
        }

        /// <summary>Every key starting with <paramref name="prefix"/>, paging through the whole range
        /// (no cap). Each page is a separate read.</summary>
        public async Task<List<KahunaKeyValue>> ScanAllByPrefix(string prefix,
            KeyValueDurability durability = KeyValueDurability.Persistent, CancellationToken cancellationToken = default)
        {
            var all = new List<KahunaKeyValue>();
            byte[] token = null;
            do
            {
                var page = await ScanByPrefix(prefix, 1000, token, false, durability, cancellationToken).ConfigureAwait(false);
                all.AddRange(page.Items);
                token = page.NextPageToken;
            } while (token != null);
            return all;
        }

        /// <summary>Every key starting with <paramref name="prefix"/> (the Kahuna 1.x name of
        /// <see cref="ScanAllByPrefix"/>).</summary>
        public unsafe Task<List<KahunaKeyValue>> GetByBucket(string prefix,
            KeyValueDurability durability = KeyValueDurability.Persistent, CancellationToken cancellationToken = default)
        {
            return ScanAllByPrefix(prefix, durability, cancellationToken);
        }

        // ---- batches and ranges ------------------------------------------------------------

        /// <summary>
        /// Reads <paramref name="keys"/> (1 to 1,000) at one revision, in one round trip. The result has
        /// one entry per key in the order asked (<c>Success == false</c>, <c>Value == null</c> for a key
        /// that does not exist) and the <see cref="KahunaKeyValueBatch.Revision"/> they were all read at.
        /// No keys, or more than 1,000, fail with <see cref="KahunaErrorCode.InvalidArgument"/>.
        /// </summary>
        public unsafe Task<KahunaKeyValueBatch> GetManyKeyValues(IEnumerable<string> keys,
            KeyValueDurability durability = KeyValueDurability.Persistent, CancellationToken cancellationToken = default)
        {
            if (keys == null) throw new ArgumentNullException(nameof(keys));
            var names = new List<string>(keys);
            var encoded = new byte[names.Count][];
            for (int i = 0; i < names.Count; i++) encoded[i] = Interop.Utf8(names[i], nameof(keys));
            int tier = Interop.Tier(durability);
            return Run(delegate(int status, Native.KahunaResult* res)
            {
                int n = checked((int)res->kvs_len.ToUInt64());
                var found = new Dictionary<string, KahunaKeyValue>(n, StringComparer.Ordinal);
                for (int i = 0; i < n; i++)
                {
                    var kv = Interop.KeyValue(&res->kvs[i], true, (long)res->kvs[i].mod_revision, durability);
                    found[kv.Key] = kv;
                }
                var items = new List<KahunaKeyValue>(names.Count);
                foreach (var name in names)
                {
                    KahunaKeyValue kv;
                    items.Add(found.TryGetValue(name, out kv) ? kv : new KahunaKeyValue(name, false, 0, null, 0, 0, null, durability));
                }
                return new KahunaKeyValueBatch(items, (long)res->revision);
            }, cancellationToken, delegate(IntPtr h, Native.KahunaCancel* cancel, ulong ud)
            {
                using (var pins = new Pins())
                {
                    var list = new Native.KahunaBytes[encoded.Length];
                    for (int i = 0; i < encoded.Length; i++) list[i] = pins.Bytes(encoded[i]);
                    var req = new KahunaGetManyRequest();
                    req.keys = list.Length == 0 ? null : (Native.KahunaBytes*)pins.Array(list);
                    req.keys_len = new UIntPtr((uint)list.Length);
                    req.durability = tier;
                    NativeMethods.kahuna_kv_get_many((Native.KahunaClient*)h, &req, cancel, ud, Interop.KvGetMany);
                }
            });
        }

        /// <summary>
        /// Writes every key of <paramref name="items"/> atomically, at one revision (persistent keys; at
        /// most 128 items and 2 MiB in all; past that <see cref="KahunaErrorCode.InvalidArgument"/>), in
        /// one round trip: either every key is written or none is. Returns that revision.
        /// </summary>
        public unsafe Task<long> SetManyKeyValues(IEnumerable<KeyValuePair<string, byte[]>> items,
            CancellationToken cancellationToken = default)
        {
            if (items == null) throw new ArgumentNullException(nameof(items));
            var keys = new List<byte[]>();
            var values = new List<byte[]>();
            foreach (var item in items)
            {
                keys.Add(Interop.Utf8(item.Key, nameof(items)));
                if (item.Value == null) throw new ArgumentNullException(nameof(items), "the value of " + item.Key + " is null");
                values.Add(item.Value);
            }
            return Run(delegate(int status, Native.KahunaResult* res) { return (long)res->revision; },
                cancellationToken, delegate(IntPtr h, Native.KahunaCancel* cancel, ulong ud)
                {
                    using (var pins = new Pins())
                    {
                        var list = new KahunaKeyValuePair[keys.Count];
                        for (int i = 0; i < list.Length; i++)
                        {
                            list[i].key = pins.Bytes(keys[i]);
                            list[i].value = pins.Bytes(values[i]);
                        }
                        var req = new KahunaSetManyRequest();
                        req.items = list.Length == 0 ? null : (KahunaKeyValuePair*)pins.Array(list);
                        req.items_len = new UIntPtr((uint)list.Length);
                        NativeMethods.kahuna_kv_set_many((Native.KahunaClient*)h, &req, cancel, ud, Interop.KvSetMany);
                    }
                });
        }

        /// <summary>Like <see cref="SetManyKeyValues(IEnumerable{KeyValuePair{string, byte[]}}, CancellationToken)"/>
        /// with UTF-8 text values (a <c>Dictionary&lt;string, string&gt;</c>, for example).</summary>
        public Task<long> SetManyKeyValues(IEnumerable<KeyValuePair<string, string>> items,
            CancellationToken cancellationToken = default)
        {
            if (items == null) throw new ArgumentNullException(nameof(items));
            var bytes = new List<KeyValuePair<string, byte[]>>();
            foreach (var item in items)
                bytes.Add(new KeyValuePair<string, byte[]>(item.Key, Interop.Utf8(item.Value, nameof(items))));
            return SetManyKeyValues(bytes, cancellationToken);
        }

        /// <summary>
        /// Deletes <paramref name="keys"/> atomically, at one revision (persistent keys; at most 128), in
        /// one round trip. Returns how many of them existed.
        /// </summary>
        /// <param name="keys">The keys to delete.</param>
        /// <param name="durability">Kahuna 1.x's parameter: batches delete persistent keys only, so
        /// anything else throws <see cref="ArgumentOutOfRangeException"/>.</param>
        /// <param name="cancellationToken">Cancels the call.</param>
        public unsafe Task<int> DeleteManyKeyValues(IEnumerable<string> keys,
            KeyValueDurability durability = KeyValueDurability.Persistent, CancellationToken cancellationToken = default)
        {
            if (keys == null) throw new ArgumentNullException(nameof(keys));
            if (durability != KeyValueDurability.Persistent)
                throw new ArgumentOutOfRangeException(nameof(durability), durability, "batches delete persistent keys only");
            var encoded = new List<byte[]>();
            foreach (var k in keys) encoded.Add(Interop.Utf8(k, nameof(keys)));
            return Run(delegate(int status, Native.KahunaResult* res) { return checked((int)res->count); },
                cancellationToken, delegate(IntPtr h, Native.KahunaCancel* cancel, ulong ud)
                {
                    using (var pins = new Pins())
                    {
                        var list = new Native.KahunaBytes[encoded.Count];
                        for (int i = 0; i < list.Length; i++) list[i] = pins.Bytes(encoded[i]);
                        var req = new KahunaDeleteManyRequest();
                        req.keys = list.Length == 0 ? null : (Native.KahunaBytes*)pins.Array(list);
                        req.keys_len = new UIntPtr((uint)list.Length);
                        NativeMethods.kahuna_kv_delete_many((Native.KahunaClient*)h, &req, cancel, ud, Interop.KvDeleteMany);
                    }
                });
        }

        /// <summary>
        /// One page of the keys in the range <c>[startKey, endKey)</c>, in byte order. Pass the page's
        /// <see cref="KahunaScanPage.NextPageToken"/> for the next one.
        /// </summary>
        /// <param name="startKey">The first key of the range (null or empty: the first key).</param>
        /// <param name="endKey">The end of the range, not included (null or empty: to the last key); it
        /// must come after <paramref name="startKey"/>.</param>
        /// <param name="limit">Page size (0: the server's default; at most 1000).</param>
        /// <param name="pageToken">Null for the first page.</param>
        /// <param name="keysOnly">Leave values out.</param>
        /// <param name="durability">The key space.</param>
        /// <param name="cancellationToken">Cancels the call.</param>
        public unsafe Task<KahunaScanPage> GetByRange(string startKey, string endKey, int limit = 0, byte[] pageToken = null,
            bool keysOnly = false, KeyValueDurability durability = KeyValueDurability.Persistent,
            CancellationToken cancellationToken = default)
        {
            byte[] start = Interop.Utf8(startKey ?? "", nameof(startKey));
            byte[] end = Interop.Utf8(endKey ?? "", nameof(endKey));
            if (limit < 0) throw new ArgumentOutOfRangeException(nameof(limit));
            int tier = Interop.Tier(durability);
            return Run(delegate(int status, Native.KahunaResult* res)
            {
                int n = checked((int)res->kvs_len.ToUInt64());
                var items = new List<KahunaKeyValue>(n);
                for (int i = 0; i < n; i++) items.Add(Interop.KeyValue(&res->kvs[i], true, (long)res->kvs[i].mod_revision, durability));
                byte[] next = Interop.Copy(res->next_page_token);
                return new KahunaScanPage(items, next.Length == 0 ? null : next, (long)res->revision);
            }, cancellationToken, delegate(IntPtr h, Native.KahunaCancel* cancel, ulong ud)
            {
                using (var pins = new Pins())
                {
                    var req = new KahunaScanRangeRequest();
                    req.start = pins.Bytes(start);
                    req.end = pins.Bytes(end);
                    req.page.limit = (uint)limit;
                    req.page.page_token = pins.Bytes(pageToken);
                    req.page.keys_only = (byte)(keysOnly ? 1 : 0);
                    req.page.durability = tier;
                    NativeMethods.kahuna_kv_scan_range((Native.KahunaClient*)h, &req, cancel, ud, Interop.KvScanRange);
                }
            });
        }

        /// <summary>
        /// Every key in the range <c>[startKey, endKey)</c> in byte order, read in pages of
        /// <paramref name="pageSize"/> as it is enumerated (each page is a separate read). Nothing is
        /// read until enumeration starts.
        /// </summary>
        /// <example>
        /// <code>
        /// var e = client.ScanByRange("orders/2024-01", "orders/2024-02").GetAsyncEnumerator();
        /// while (await e.MoveNextAsync()) Console.WriteLine(e.Current.Key);   // or: await foreach with a C# 8 compiler
        /// </code>
        /// </example>
        public KahunaRangeScan ScanByRange(string startKey, string endKey, int pageSize = 1000, bool keysOnly = false,
            KeyValueDurability durability = KeyValueDurability.Persistent)
        {
            if (pageSize < 0) throw new ArgumentOutOfRangeException(nameof(pageSize));
            Interop.Tier(durability);
            if (Volatile.Read(ref _disposed) != 0) throw new ObjectDisposedException(nameof(KahunaClient));
            return new KahunaRangeScan(this, startKey ?? "", endKey ?? "", pageSize, keysOnly, durability);
        }

        // ---- rate limiting -----------------------------------------------------------------

        /// <summary>
        /// Takes <paramref name="cost"/> units from the rate limiter <paramref name="name"/>, counting by
        /// <paramref name="policy"/>, if it has them: one round trip decides, atomically across every
        /// client of the cluster. A refusal is <c>IsAllowed == false</c> with
        /// <see cref="KahunaRateLimitResult.RetryAfter"/>, not an exception. A persistent limiter is
        /// replicated (its count survives a failover, and a retried check is counted once); an
        /// ephemeral one lives in the leader's memory (faster; it starts afresh after a leader change).
        /// A limiter checked with another policy than before starts afresh under the new one.
        /// </summary>
        /// <param name="name">The limiter's name (UTF-8, 1 to 1,024 bytes).</param>
        /// <param name="policy">How the limiter counts.</param>
        /// <param name="cost">Units this request takes (0 counts as 1); at most the policy's limit.</param>
        /// <param name="durability">Persistent (replicated) or ephemeral (leader memory).</param>
        /// <param name="cancellationToken">Cancels the call.</param>
        /// <exception cref="KahunaException"><see cref="KahunaErrorCode.InvalidArgument"/> for an empty or
        /// too long name, a zero limit, window or refill rate, or a cost above the limit.</exception>
        public unsafe Task<KahunaRateLimitResult> CheckRateLimit(string name, KahunaRatePolicy policy, long cost = 1,
            RateLimitDurability durability = RateLimitDurability.Persistent, CancellationToken cancellationToken = default)
        {
            byte[] n = Interop.Utf8(name, nameof(name));
            if (policy == null) throw new ArgumentNullException(nameof(policy));
            if (cost < 0) throw new ArgumentOutOfRangeException(nameof(cost), "must not be negative");
            int tier = Interop.Tier(durability);
            return Run(delegate(int status, Native.KahunaResult* res)
            {
                return new KahunaRateLimitResult(res->succeeded != 0, (long)Math.Min(res->remaining, (ulong)long.MaxValue),
                    TimeSpan.FromMilliseconds(res->retry_after_ms), (long)res->revision);
            }, cancellationToken, delegate(IntPtr h, Native.KahunaCancel* cancel, ulong ud)
            {
                using (var pins = new Pins())
                {
                    var req = new KahunaRateCheckRequest();
                    req.name = pins.Bytes(n);
                    req.policy = policy.NativeKind;
                    req.limit = (ulong)policy.Limit;
                    req.window_ms = (ulong)policy.WindowMs;
                    req.refill_per_second = (ulong)policy.RefillPerSecond;
                    req.cost = (ulong)cost;
                    req.durability = tier;
                    NativeMethods.kahuna_rate_check((Native.KahunaClient*)h, &req, cancel, ud, Interop.RateCheck);
                }
            });
        }

        // ---- watches ---------------------------------------------------------------------

        /// <summary>
        /// Opens a watch on the persistent key <paramref name="key"/> (with
        /// <paramref name="prefix"/>, on every key starting with it); completes once the server
        /// has it in place, so every change committed after that is delivered. Dispose the watch
        /// to close it.
        /// </summary>
        /// <param name="key">The key, or the prefix (empty with <paramref name="prefix"/>: every key).</param>
        /// <param name="prefix">Watch every key starting with <paramref name="key"/>.</param>
        /// <param name="startRevision">The first revision to deliver changes of (a past one replays the
        /// retained history from there); 0: only changes made after the watch is open.</param>
        /// <param name="progressInterval">How often a progress notification comes while nothing changes,
        /// from 100 ms to 10 minutes (null: 5 s); a refused one fails with
        /// <see cref="KahunaErrorCode.InvalidArgument"/>.</param>
        /// <param name="cancellationToken">Cancels opening the watch.</param>
        /// <example>
        /// <code>
        /// var watch = await client.Watch("config/", prefix: true);
        /// try
        /// {
        ///     var e = watch.GetAsyncEnumerator();
        ///     while (await e.MoveNextAsync())
        ///         Console.WriteLine(e.Current.Type + " " + e.Current.Key + " = " + e.Current.ValueAsString);
        /// }
        /// finally { await watch.DisposeAsync(); }
        /// </code>
        /// </example>
        public unsafe Task<KahunaWatch> Watch(string key, bool prefix = false, long startRevision = 0,
            TimeSpan? progressInterval = null, CancellationToken cancellationToken = default)
        {
            byte[] k = Interop.Utf8(key, nameof(key));
            if (startRevision < 0) throw new ArgumentOutOfRangeException(nameof(startRevision), "must not be negative");
            ulong intervalMs = 0;
            if (progressInterval.HasValue)
            {
                // Zero means "the default" on the C ABI, so an explicit zero is refused here.
                if (progressInterval.Value <= TimeSpan.Zero)
                    throw new ArgumentOutOfRangeException(nameof(progressInterval), "must be positive");
                intervalMs = Interop.Millis(progressInterval.Value, nameof(progressInterval));
            }
            var client = this;
            return Run(delegate(int status, Native.KahunaResult* res)
            {
                var watch = new KahunaWatch(client, new WatchHandle((IntPtr)res->watch), key, prefix);
                Interop.Log(client._inFlight.Logger, KahunaLogLevel.Debug,
                    "watch on " + (prefix ? "prefix " : "key ") + key + " open after revision " + res->revision);
                return watch;
            }, cancellationToken, delegate(IntPtr h, Native.KahunaCancel* cancel, ulong ud)
            {
                using (var pins = new Pins())
                {
                    var req = new KahunaWatchRequest();
                    req.key = pins.Bytes(k);
                    req.prefix = (byte)(prefix ? 1 : 0);
                    req.start_revision = (ulong)startRevision;
                    req.progress_interval_ms = intervalMs;
                    NativeMethods.kahuna_watch_open((Native.KahunaClient*)h, &req, cancel, ud, Interop.WatchOpen);
                }
            });
        }

        // ---- leader election --------------------------------------------------------------

        /// <summary>
        /// Campaigns in election <paramref name="name"/> announcing <paramref name="value"/>: waits in
        /// the election's queue (candidates are elected in the order they campaigned) and completes
        /// once elected, or with null when <paramref name="wait"/> passed first. Cancelling withdraws
        /// the candidacy. The election is the persistent lock <paramref name="name"/>.
        /// </summary>
        /// <param name="name">The election's name.</param>
        /// <param name="value">What the leader announces to observers (UTF-8).</param>
        /// <param name="ttl">The leader's lease, renewed at about a third of it: how long a dead
        /// leader holds the election up.</param>
        /// <param name="wait">How long to wait to be elected (null: until elected or cancelled).</param>
        /// <param name="cancellationToken">Withdraws the candidacy.</param>
        /// <example>
        /// <code>
        /// var leadership = await client.Campaign("scheduler", "10.0.0.7:8080", TimeSpan.FromSeconds(10));
        /// try { await RunScheduler(leadership.Lost); }
        /// finally { await leadership.DisposeAsync(); }   // resigns
        /// </code>
        /// </example>
        public Task<KahunaLeadership> Campaign(string name, string value, TimeSpan ttl, TimeSpan? wait = null,
            CancellationToken cancellationToken = default)
        {
            return Campaign(name, Interop.Utf8(value, nameof(value)), ttl, wait, cancellationToken);
        }

        /// <summary>Like <see cref="Campaign(string, string, TimeSpan, TimeSpan?, CancellationToken)"/>
        /// with a byte value.</summary>
        public unsafe Task<KahunaLeadership> Campaign(string name, byte[] value, TimeSpan ttl, TimeSpan? wait = null,
            CancellationToken cancellationToken = default)
        {
            byte[] n = Interop.Utf8(name, nameof(name));
            if (value == null) throw new ArgumentNullException(nameof(value));
            if (ttl <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(ttl), "must be positive");
            ulong ttlMs = Interop.Millis(ttl, nameof(ttl));
            ulong waitMs = wait.HasValue ? Interop.Millis(wait.Value, nameof(wait)) : 0;
            var client = this;
            return Run(delegate(int status, Native.KahunaResult* res)
            {
                if (res->succeeded == 0)
                {
                    Interop.Log(client._inFlight.Logger, KahunaLogLevel.Debug, "not elected in " + name + " within the wait");
                    return null;
                }
                var l = new KahunaLock(client, new LockHandle((IntPtr)res->@lock), name, LockDurability.Persistent, true, null);
                Interop.Log(client._inFlight.Logger, KahunaLogLevel.Debug, "elected in " + name + " with epoch " + l.FencingToken);
                return new KahunaLeadership(l, name);
            }, cancellationToken, delegate(IntPtr h, Native.KahunaCancel* cancel, ulong ud)
            {
                using (var pins = new Pins())
                {
                    var req = new KahunaCampaignRequest();
                    req.name = pins.Bytes(n);
                    req.value = pins.Bytes(value);
                    req.ttl_ms = ttlMs;
                    req.wait = (byte)(wait.HasValue ? 1 : 0);
                    req.wait_ms = waitMs;
                    NativeMethods.kahuna_election_campaign((Native.KahunaClient*)h, &req, cancel, ud, Interop.ElectionCampaign);
                }
            });
        }

        /// <summary>The current leader of election <paramref name="name"/> (a linearizable read), or
        /// null when there is none.</summary>
        public unsafe Task<KahunaLeader> GetElectionLeader(string name, CancellationToken cancellationToken = default)
        {
            byte[] n = Interop.Utf8(name, nameof(name));
            return Run(delegate(int status, Native.KahunaResult* res)
            {
                return KahunaLeader.From(&res->lock_info);
            }, cancellationToken, delegate(IntPtr h, Native.KahunaCancel* cancel, ulong ud)
            {
                using (var pins = new Pins())
                {
                    var req = new KahunaElectionRequest();
                    req.name = pins.Bytes(n);
                    NativeMethods.kahuna_election_leader((Native.KahunaClient*)h, &req, cancel, ud, Interop.ElectionLeader);
                }
            });
        }

        /// <summary>
        /// Follows the leader of election <paramref name="name"/>: the observer's first item is the
        /// leader now, each later one the next change (null: no leader). Dispose it to close it.
        /// </summary>
        /// <example>
        /// <code>
        /// var observer = await client.Observe("scheduler");
        /// try
        /// {
        ///     var e = observer.GetAsyncEnumerator();
        ///     while (await e.MoveNextAsync())
        ///         Console.WriteLine(e.Current == null ? "no leader" : e.Current.ValueAsString());
        /// }
        /// finally { await observer.DisposeAsync(); }
        /// </code>
        /// </example>
        public unsafe Task<KahunaElectionObserver> Observe(string name, CancellationToken cancellationToken = default)
        {
            byte[] n = Interop.Utf8(name, nameof(name));
            var client = this;
            return Run(delegate(int status, Native.KahunaResult* res)
            {
                return new KahunaElectionObserver(client, new ObserverHandle((IntPtr)res->observer), name);
            }, cancellationToken, delegate(IntPtr h, Native.KahunaCancel* cancel, ulong ud)
            {
                using (var pins = new Pins())
                {
                    var req = new KahunaElectionRequest();
                    req.name = pins.Bytes(n);
                    NativeMethods.kahuna_election_observe((Native.KahunaClient*)h, &req, cancel, ud, Interop.ElectionObserve);
                }
            });
        }

        // ---- transactions and sequences --------------------------------------------------

        /// <summary>Starts an atomic transaction over persistent keys and locks: compares, then a
        /// branch of operations for when they all hold and one for when they do not.</summary>
        public KahunaTransaction CreateTransaction()
        {
            if (Volatile.Read(ref _disposed) != 0) throw new ObjectDisposedException(nameof(KahunaClient));
            return new KahunaTransaction(this);
        }

        internal unsafe Task<KahunaTransactionResult> Commit(KahunaTransaction txn, CancellationToken cancellationToken)
        {
            var compares = txn.NativeCompares();
            var thenOps = txn.NativeOps(true);
            var elseOps = txn.NativeOps(false);
            return Run(delegate(int status, Native.KahunaResult* res)
            {
                int n = checked((int)res->kvs_len.ToUInt64());
                var items = new List<KahunaKeyValue>(n);
                for (int i = 0; i < n; i++)
                    items.Add(Interop.KeyValue(&res->kvs[i], res->kvs[i].succeeded != 0, (long)res->kvs[i].mod_revision,
                        KeyValueDurability.Persistent));
                return new KahunaTransactionResult(res->succeeded != 0, (long)res->revision, items);
            }, cancellationToken, delegate(IntPtr h, Native.KahunaCancel* cancel, ulong ud)
            {
                using (var pins = new Pins())
                {
                    var req = new KahunaTxnRequest();
                    var cs = txn.Fill(compares, pins);
                    var ts = txn.Fill(thenOps, pins);
                    var es = txn.Fill(elseOps, pins);
                    req.compares = cs.Length == 0 ? null : (Native.KahunaCompare*)pins.Array(cs);
                    req.compares_len = new UIntPtr((uint)cs.Length);
                    req.then_ops = ts.Length == 0 ? null : (Native.KahunaTxnOp*)pins.Array(ts);
                    req.then_len = new UIntPtr((uint)ts.Length);
                    req.else_ops = es.Length == 0 ? null : (Native.KahunaTxnOp*)pins.Array(es);
                    req.else_len = new UIntPtr((uint)es.Length);
                    if (txn.FenceResource != null)
                    {
                        req.fence.present = 1;
                        req.fence.resource = pins.Bytes(txn.FenceResource);
                        req.fence.token = (ulong)txn.FenceToken;
                        req.fence.durability = NativeMethods.KAHUNA_DURABILITY_PERSISTENT;
                    }
                    NativeMethods.kahuna_txn_commit((Native.KahunaClient*)h, &req, cancel, ud, Interop.TxnCommit);
                }
            });
        }

        /// <summary>
        /// Reserves <paramref name="count"/> values of sequence <paramref name="name"/> (which starts
        /// at 1). Ranges never overlap. With an <paramref name="idempotencyKey"/>, a retry (also from
        /// another process) gets the same range back.
        /// </summary>
        public unsafe Task<KahunaSequenceRange> ReserveSequenceRange(string name, long count, string idempotencyKey = null,
            CancellationToken cancellationToken = default)
        {
            byte[] n = Interop.Utf8(name, nameof(name));
            if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), "must be at least 1");
            byte[] key = idempotencyKey == null ? null : Interop.Utf8(idempotencyKey, nameof(idempotencyKey));
            return Run(delegate(int status, Native.KahunaResult* res)
            {
                return new KahunaSequenceRange(name, (long)res->first, (long)res->count, res->succeeded != 0);
            }, cancellationToken, delegate(IntPtr h, Native.KahunaCancel* cancel, ulong ud)
            {
                using (var pins = new Pins())
                {
                    var req = new KahunaSequenceRequest();
                    req.name = pins.Bytes(n);
                    req.count = (ulong)count;
                    req.idempotency_key = pins.Bytes(key);
                    NativeMethods.kahuna_sequence_next((Native.KahunaClient*)h, &req, cancel, ud, Interop.SequenceNext);
                }
            });
        }

        /// <summary>The next value of sequence <paramref name="name"/>; the same value again for a retry
        /// with the same <paramref name="idempotencyKey"/>.</summary>
        public async Task<long> NextSequenceValue(string name, string idempotencyKey = null,
            CancellationToken cancellationToken = default)
        {
            var r = await ReserveSequenceRange(name, 1, idempotencyKey, cancellationToken).ConfigureAwait(false);
            return r.Start;
        }

        /// <summary>Like <see cref="NextSequenceValue(string, string, CancellationToken)"/> (Kahuna 1.x's
        /// signature; sequences are always persistent).</summary>
        public Task<long> NextSequenceValue(string name, string idempotencyKey, SequenceDurability durability,
            CancellationToken cancellationToken = default)
        {
            Interop.Check(durability);
            return NextSequenceValue(name, idempotencyKey, cancellationToken);
        }

        /// <summary>Like <see cref="ReserveSequenceRange(string, long, string, CancellationToken)"/> (Kahuna 1.x's
        /// signature; sequences are always persistent).</summary>
        public Task<KahunaSequenceRange> ReserveSequenceRange(string name, long count, string idempotencyKey,
            SequenceDurability durability, CancellationToken cancellationToken = default)
        {
            Interop.Check(durability);
            return ReserveSequenceRange(name, count, idempotencyKey, cancellationToken);
        }

        /// <summary>The value the next <see cref="NextSequenceValue(string, string, CancellationToken)"/> of
        /// <paramref name="name"/> would return (1 for a sequence never used), without reserving it.</summary>
        public unsafe Task<long> PeekSequence(string name, CancellationToken cancellationToken = default)
        {
            byte[] n = Interop.Utf8(name, nameof(name));
            return Run(delegate(int status, Native.KahunaResult* res) { return (long)res->first; },
                cancellationToken, delegate(IntPtr h, Native.KahunaCancel* cancel, ulong ud)
                {
                    using (var pins = new Pins())
                    {
                        var req = new KahunaSequencePeekRequest();
                        req.name = pins.Bytes(n);
                        NativeMethods.kahuna_sequence_peek((Native.KahunaClient*)h, &req, cancel, ud, Interop.SequencePeek);
                    }
                });
        }

        // ---- cluster ---------------------------------------------------------------------

        /// <summary>The cluster as one member sees it: the leader it knows, its term and state,
        /// every member, its log indices and storage engine. The member is the one the client
        /// talks to, which is the leader once the client has found it; a member that does not
        /// answer is skipped for the next one the client knows, and with none left the call fails
        /// with <see cref="KahunaException"/> (<see cref="KahunaErrorCode.Timeout"/> at the
        /// deadline, retryable).</summary>
        public unsafe Task<KahunaClusterStatus> GetClusterStatus(CancellationToken cancellationToken = default)
        {
            return Run(delegate(int status, Native.KahunaResult* res)
            {
                var c = &res->cluster;
                int n = checked((int)c->members_len.ToUInt64());
                var members = new List<KahunaClusterMember>(n);
                for (int i = 0; i < n; i++)
                {
                    var m = &c->members[i];
                    members.Add(new KahunaClusterMember((long)m->id, Interop.Text(m->peer_addr), Interop.Text(m->client_addr),
                        m->voter != 0, m->leader_view != 0, (long)m->matched_index, (long)m->lag, m->answering != 0,
                        TimeSpan.FromMilliseconds(m->last_answer_ms)));
                }
                return new KahunaClusterStatus((long)c->member_id, (long)c->leader_id, (long)c->term, Interop.Text(c->state),
                    members, (long)c->committed_index, (long)c->applied_index, (long)c->last_log_index,
                    (long)c->snapshot_index, Interop.Text(c->storage));
            }, cancellationToken, delegate(IntPtr h, Native.KahunaCancel* cancel, ulong ud)
            {
                NativeMethods.kahuna_cluster_status((Native.KahunaClient*)h, cancel, ud, Interop.ClusterStatus);
            });
        }

        /// <summary>The members of the cluster, voters and learners, with their peer and client
        /// addresses and roles: <see cref="KahunaClusterStatus.Members"/> of
        /// <see cref="GetClusterStatus"/>, one round trip.</summary>
        public async Task<IReadOnlyList<KahunaClusterMember>> GetMembers(CancellationToken cancellationToken = default)
        {
            var s = await GetClusterStatus(cancellationToken).ConfigureAwait(false);
            return s.Members;
        }

        /// <summary>The same as <see cref="GetMembers"/> (the name this package used first).</summary>
        public Task<IReadOnlyList<KahunaClusterMember>> GetClusterMembers(CancellationToken cancellationToken = default) =>
            GetMembers(cancellationToken);

        /// <summary>
        /// Makes voter <paramref name="memberId"/> the leader (0: any voter whose log has caught
        /// up), through the leader, which stays on as a follower; completes once the new leader
        /// leads. Transferring to the leader itself changes nothing. A member id not in the
        /// cluster is <see cref="KahunaErrorCode.InvalidArgument"/>; a learner, or a voter that
        /// has not caught up within an election timeout, is <see cref="KahunaErrorCode.Membership"/>.
        /// A cluster started with <c>--auth-tokens</c> needs an admin token.
        /// </summary>
        public unsafe Task<KahunaLeaderTransfer> TransferLeader(long memberId, CancellationToken cancellationToken = default)
        {
            if (memberId < 0) throw new ArgumentOutOfRangeException(nameof(memberId), memberId, "a member id is positive (0: any caught-up voter)");
            return Run(delegate(int status, Native.KahunaResult* res)
            {
                return new KahunaLeaderTransfer((long)res->cluster.leader_id, (long)res->cluster.term);
            }, cancellationToken, delegate(IntPtr h, Native.KahunaCancel* cancel, ulong ud)
            {
                var req = new KahunaTransferLeaderRequest();
                req.node_id = (ulong)memberId;
                NativeMethods.kahuna_cluster_transfer_leader((Native.KahunaClient*)h, &req, cancel, ud, Interop.ClusterTransferLeader);
            });
        }

        // ---- disposal --------------------------------------------------------------------

        /// <summary>Closes the client. Calls still in flight fail with <see cref="ObjectDisposedException"/>;
        /// locks taken through it stay valid until disposed.</summary>
        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
            _handle.Dispose();
        }

        /// <summary>Closes the client and completes when every call it had in flight has completed.</summary>
        public ValueTask DisposeAsync()
        {
            Dispose();
            return new ValueTask(_inFlight.WhenAllDone());
        }
    }
}
