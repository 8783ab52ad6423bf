using System;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using Kahuna.Client.Native;

namespace Kahuna.Client
{
    /// <summary>
    /// The result of <see cref="KahunaClient.GetOrCreateLock(string, TimeSpan, TimeSpan, TimeSpan, LockDurability, CancellationToken)"/>,
    /// or a semaphore's permit from <see cref="KahunaClient.AcquirePermit"/> (<see cref="Resource"/> is then the
    /// semaphore's name, and the fencing token the permit's own).
    /// While <see cref="IsAcquired"/>, the lease is renewed in the background at about a third
    /// of its expiry, and <see cref="Lost"/> fires the moment it can no longer be trusted.
    /// <see cref="DisposeAsync"/> releases it.
    /// </summary>
    public sealed class KahunaLock : IAsyncDisposable, IDisposable
    {
        private readonly KahunaClient _client;
        private readonly LockHandle _handle;
        private readonly CancellationTokenSource _lost = new CancellationTokenSource();
        private readonly bool _acquired;
        private int _released;

        internal unsafe KahunaLock(KahunaClient client, LockHandle handle, string resource, LockDurability durability,
            bool acquired, KahunaLockInfo holder)
        {
            _client = client;
            _handle = handle;
            _acquired = acquired;
            Resource = resource;
            Durability = durability;
            Holder = holder;
            if (acquired)
            {
                FencingToken = (long)NativeMethods.kahuna_lock_fencing_token((Native.KahunaLock*)handle.DangerousGetHandle());
                Owner = Interop.Copy(NativeMethods.kahuna_lock_owner((Native.KahunaLock*)handle.DangerousGetHandle()));
                WatchLost();
            }
            else
            {
                Owner = new byte[0];
                _lost.Cancel();
            }
        }

        private unsafe void WatchLost()
        {
            // The watch must not reference this object: it holds a GCHandle until the lock is
            // lost or freed, and a lock nobody references must still be finalized (and released).
            var lost = _lost;
            var logger = _client.InFlight.Logger;
            string what = "lock " + Resource + " (fencing token " + FencingToken + ")";
            Task<bool> watch = Calls.Run(_handle, null, delegate(int status, Native.KahunaResult* res) { return true; },
                CancellationToken.None, delegate(IntPtr h, Native.KahunaCancel* cancel, ulong ud)
                {
                    NativeMethods.kahuna_lock_on_lost((Native.KahunaLock*)h, cancel, ud, Interop.LockOnLost);
                });
            watch.ContinueWith(delegate(Task<bool> t)
            {
                Interop.Log(logger, KahunaLogLevel.Information, what + " is no longer held (lost, expired or released)");
                try { lost.Cancel(); } catch (ObjectDisposedException) { }
            }, TaskContinuationOptions.ExecuteSynchronously);
        }

        /// <summary>The native handle, for calls on a leadership (which is this lock).</summary>
        internal LockHandle Handle => _handle;

        internal KahunaClient Client => _client;

        /// <summary>The lock's resource name.</summary>
        public string Resource { get; }

        /// <summary>The lock's tier.</summary>
        public LockDurability Durability { get; }

        /// <summary>
        /// Whether this holder has the lock now: acquired, not released, and its lease still
        /// trusted by the client's own monotonic clock.
        /// </summary>
        public unsafe bool IsAcquired
        {
            get
            {
                if (!_acquired) return false;
                bool added = false;
                try
                {
                    _handle.DangerousAddRef(ref added);
                    return NativeMethods.kahuna_lock_is_acquired((Native.KahunaLock*)_handle.DangerousGetHandle()) != 0;
                }
                catch (ObjectDisposedException)
                {
                    return false;
                }
                finally
                {
                    if (added) _handle.DangerousRelease();
                }
            }
        }

        /// <summary>The fencing token of this grant (0 when not acquired). Pass it with every write the
        /// lock protects; tokens of a resource strictly increase.</summary>
        public long FencingToken { get; }

        /// <summary>The owner name this holder locked as (empty when not acquired).</summary>
        public byte[] Owner { get; }

        /// <summary>The owner name as text.</summary>
        public string OwnerAsString => Encoding.UTF8.GetString(Owner);

        /// <summary>When not acquired: the current holder, if the server named one.</summary>
        public KahunaLockInfo Holder { get; }

        /// <summary>
        /// Cancelled when this holder stops holding the lock: the lease could no longer be
        /// trusted, the server refused a renewal, or the lock was released or disposed. Already
        /// cancelled when the lock was not acquired. Pass it to the work the lock protects.
        /// </summary>
        public CancellationToken Lost => _lost.Token;

        /// <summary>
        /// Renews the lease now for <paramref name="duration"/>, which also becomes the TTL of later
        /// background renewals. Returns (false, token) when the lock is no longer this holder's.
        /// </summary>
        public async Task<(bool, long)> TryExtend(TimeSpan duration, CancellationToken cancellationToken = default)
        {
            if (!_acquired) return (false, FencingToken);
            ulong ttl = Interop.Millis(duration, nameof(duration));
            try
            {
                await Extend(ttl, cancellationToken).ConfigureAwait(false);
                return (true, FencingToken);
            }
            catch (KahunaException e) when (e.Code == KahunaErrorCode.LockNotHeld)
            {
                return (false, FencingToken);
            }
        }

        private unsafe Task<bool> Extend(ulong ttl, CancellationToken cancellationToken)
        {
            return Calls.Run(_handle, _client.InFlight, delegate(int status, Native.KahunaResult* res) { return true; },
                cancellationToken, delegate(IntPtr h, Native.KahunaCancel* cancel, ulong ud)
                {
                    var req = new KahunaLockExtendRequest();
                    req.ttl_ms = ttl;
                    NativeMethods.kahuna_lock_extend((Native.KahunaLock*)h, &req, cancel, ud, Interop.LockExtend);
                });
        }

        /// <summary>Like <see cref="TryExtend(TimeSpan, CancellationToken)"/> in milliseconds.</summary>
        public unsafe Task<(bool, long)> TryExtend(int durationMs, CancellationToken cancellationToken = default)
        {
            return TryExtend(TimeSpan.FromMilliseconds(durationMs), cancellationToken);
        }

        /// <summary>Who holds the lock now, as the server says (null when nobody does).</summary>
        public unsafe Task<KahunaLockInfo> GetInfo(CancellationToken cancellationToken = default)
        {
            return _client.GetLockInfo(Resource, Durability, cancellationToken);
        }

        /// <summary>Releases the lock and stops renewing it. Returns whether the server released it
        /// (false when it had expired, was lost, or was already released).</summary>
        public unsafe Task<bool> Release(CancellationToken cancellationToken = default)
        {
            if (!_acquired || Interlocked.Exchange(ref _released, 1) != 0) return Task.FromResult(false);
            return Calls.Run(_handle, _client.InFlight, delegate(int status, Native.KahunaResult* res) { return res->succeeded != 0; },
                cancellationToken, delegate(IntPtr h, Native.KahunaCancel* cancel, ulong ud)
                {
                    NativeMethods.kahuna_lock_release((Native.KahunaLock*)h, cancel, ud, Interop.LockRelease);
                });
        }

        /// <summary>Releases the lock (if still held) and frees it.</summary>
        public ValueTask DisposeAsync()
        {
            return new ValueTask(DisposeCore());
        }

        private async Task DisposeCore()
        {
            try
            {
                if (_acquired && Volatile.Read(ref _released) == 0) await Release().ConfigureAwait(false);
            }
            catch (Exception)
            {
                // The lease expires on its own; freeing the handle below retries the release.
            }
            finally
            {
                _handle.Dispose();
            }
        }

        /// <summary>Frees the lock; a lock still held is released in the background.</summary>
        public void Dispose()
        {
            _handle.Dispose();
        }
    }
}
