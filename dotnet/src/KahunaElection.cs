// Leader election: KahunaClient.Campaign elects a KahunaLeadership (the election's persistent
// lock, so it reuses KahunaLock for its epoch, lost token and resignation); KahunaClient.Observe
// follows the leader with a KahunaElectionObserver. The observer's enumerator is written by
// hand: Mono's mcs has no async iterators and no `await foreach`.
using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using Kahuna.Client.Native;

namespace Kahuna.Client
{
    /// <summary>Owns a native <c>KahunaObserver</c>; freeing it completes a pending next.</summary>
    internal sealed unsafe class ObserverHandle : SafeHandle
    {
        internal ObserverHandle(IntPtr p) : base(IntPtr.Zero, true) { SetHandle(p); }
        public override bool IsInvalid => handle == IntPtr.Zero;
        protected override bool ReleaseHandle()
        {
            NativeMethods.kahuna_observer_free((Native.KahunaObserver*)handle);
            return true;
        }
    }

    /// <summary>An election's leader, as observers see it.</summary>
    public sealed class KahunaLeader
    {
        internal KahunaLeader(string owner, long epoch, byte[] value)
        {
            Owner = owner;
            Epoch = epoch;
            Value = value;
        }

        /// <summary>The leader in a native result's <c>lock_info</c>, or null when there is none.</summary>
        internal static unsafe KahunaLeader From(Native.KahunaLockInfo* info)
        {
            if (info->present == 0) return null;
            return new KahunaLeader(Interop.Text(info->owner), (long)info->fencing_token, Interop.Copy(info->value));
        }

        /// <summary>The leader's owner name (unique per campaign).</summary>
        public string Owner { get; }
        /// <summary>The leader's epoch: its fencing token, larger for every later leader.</summary>
        public long Epoch { get; }
        /// <summary>What the leader announces.</summary>
        public byte[] Value { get; }

        /// <summary>The value as UTF-8 text.</summary>
        public string ValueAsString() => Encoding.UTF8.GetString(Value);

        /// <inheritdoc/>
        public override string ToString() => Owner + " (epoch " + Epoch + "): " + ValueAsString();
    }

    /// <summary>
    /// Being the leader of an election, from <see cref="KahunaClient.Campaign(string, string, TimeSpan, TimeSpan?, CancellationToken)"/>.
    /// The lease renews itself in the background; <see cref="Lost"/> fires the moment it can no
    /// longer be trusted by the client's clock. <see cref="Resign"/> or <see cref="DisposeAsync"/>
    /// steps down so the next candidate is elected at once.
    /// </summary>
    public sealed class KahunaLeadership : IAsyncDisposable, IDisposable
    {
        // The election's lock: its fencing token is the epoch, its release the resignation.
        private readonly KahunaLock _lock;

        internal KahunaLeadership(KahunaLock l, string name)
        {
            _lock = l;
            Name = name;
        }

        /// <summary>The election's name.</summary>
        public string Name { get; }

        /// <summary>This leadership's epoch (its fencing token): larger than every earlier leader's.
        /// Pass it with writes only the leader may make (<see cref="Lock"/> fences them).</summary>
        public long Epoch => _lock.FencingToken;

        /// <summary>This candidate's owner name, as observers see it.</summary>
        public string Owner => _lock.OwnerAsString;

        /// <summary>Whether this is still the leader by the client's own clock.</summary>
        public bool IsLeader => _lock.IsAcquired;

        /// <summary>Cancelled when leadership ends: the lease could no longer be trusted, or it was
        /// resigned or disposed. Pass it to the work only the leader may do.</summary>
        public CancellationToken Lost => _lock.Lost;

        /// <summary>The election's lock, for fenced writes (<c>SetKeyValueFenced</c>, transactions).</summary>
        public KahunaLock Lock => _lock;

        /// <summary>Announces a new value to observers. Fails with <see cref="KahunaException"/>
        /// <see cref="KahunaErrorCode.LockNotHeld"/> once no longer the leader.</summary>
        public unsafe Task Proclaim(byte[] value, CancellationToken cancellationToken = default)
        {
            if (value == null) throw new ArgumentNullException(nameof(value));
            return Calls.Run(_lock.Handle, _lock.Client.InFlight, delegate(int status, Native.KahunaResult* res) { return true; },
                cancellationToken, delegate(IntPtr h, Native.KahunaCancel* cancel, ulong ud)
                {
                    using (var pins = new Pins())
                    {
                        var req = new KahunaProclaimRequest();
                        req.value = pins.Bytes(value);
                        NativeMethods.kahuna_election_proclaim((Native.KahunaLock*)h, &req, cancel, ud, Interop.ElectionProclaim);
                    }
                });
        }

        /// <summary>Like <see cref="Proclaim(byte[], CancellationToken)"/> with a UTF-8 value.</summary>
        public Task Proclaim(string value, CancellationToken cancellationToken = default)
        {
            return Proclaim(Interop.Utf8(value, nameof(value)), cancellationToken);
        }

        /// <summary>Steps down, so the next candidate is elected at once. Returns whether the server
        /// still had this leadership (false when it was already lost or resigned).</summary>
        public Task<bool> Resign(CancellationToken cancellationToken = default)
        {
            return _lock.Release(cancellationToken);
        }

        /// <summary>Resigns (if still leading) and frees the leadership.</summary>
        public ValueTask DisposeAsync()
        {
            return _lock.DisposeAsync();
        }

        /// <summary>Frees the leadership; one still held is resigned in the background.</summary>
        public void Dispose()
        {
            _lock.Dispose();
        }
    }

    /// <summary>
    /// Follows the leader of an election, from <see cref="KahunaClient.Observe"/>: the first item
    /// is the leader now, each later one the next change (null: no leader). It resumes across
    /// member failures by itself and never goes back to an earlier state. Read it with
    /// <see cref="NextAsync"/> or as an <see cref="IAsyncEnumerable{T}"/> (one reader at a time);
    /// dispose it to close it. Disposing ends an enumeration in progress (its pending
    /// <c>MoveNextAsync</c> returns false) and fails a pending <see cref="NextAsync"/> with
    /// <see cref="ObjectDisposedException"/>.
    /// </summary>
    public sealed class KahunaElectionObserver : IAsyncEnumerable<KahunaLeader>, IAsyncDisposable, IDisposable
    {
        private readonly KahunaClient _client;
        private readonly ObserverHandle _handle;
        private int _closed;

        internal KahunaElectionObserver(KahunaClient client, ObserverHandle handle, string name)
        {
            _client = client;
            _handle = handle;
            Name = name;
        }

        /// <summary>The election's name.</summary>
        public string Name { get; }

        internal bool IsClosed => Volatile.Read(ref _closed) != 0;

        /// <summary>
        /// The leader now (first call), then after each change; null while there is none. Fails
        /// with <see cref="ObjectDisposedException"/> once the observer or its client is disposed.
        /// Cancelling it loses nothing: the next call gives the change this one would have.
        /// </summary>
        public unsafe Task<KahunaLeader> NextAsync(CancellationToken cancellationToken = default)
        {
            if (IsClosed) throw new ObjectDisposedException(nameof(KahunaElectionObserver));
            return Calls.Run(_handle, _client.InFlight, delegate(int status, Native.KahunaResult* res)
            {
                return KahunaLeader.From(&res->lock_info);
            }, cancellationToken, delegate(IntPtr h, Native.KahunaCancel* cancel, ulong ud)
            {
                NativeMethods.kahuna_observer_next((Native.KahunaObserver*)h, cancel, ud, Interop.ObserverNext);
            });
        }

        /// <summary>The leader now, then each change (a null element: no leader); ends when the
        /// observer is disposed. <paramref name="cancellationToken"/> cancels a pending
        /// <c>MoveNextAsync</c>. Disposing the enumerator leaves the observer open.</summary>
        public IAsyncEnumerator<KahunaLeader> GetAsyncEnumerator(CancellationToken cancellationToken = default)
        {
            return new Enumerator(this, cancellationToken);
        }

        /// <summary>Closes the observer (a pending next completes at once) and frees it.</summary>
        public ValueTask DisposeAsync()
        {
            Dispose();
            return default(ValueTask);
        }

        /// <summary>Closes the observer (a pending next completes at once) and frees it.</summary>
        public void Dispose()
        {
            if (Interlocked.Exchange(ref _closed, 1) != 0) return;
            _handle.Dispose();
        }

        private sealed class Enumerator : IAsyncEnumerator<KahunaLeader>
        {
            private readonly KahunaElectionObserver _observer;
            private readonly CancellationToken _token;

            internal Enumerator(KahunaElectionObserver observer, CancellationToken token)
            {
                _observer = observer;
                _token = token;
            }

            public KahunaLeader Current { get; private set; }

            public async ValueTask<bool> MoveNextAsync()
            {
                if (_observer.IsClosed) return false;
                try
                {
                    Current = await _observer.NextAsync(_token).ConfigureAwait(false);
                    return true;
                }
                catch (ObjectDisposedException) when (_observer.IsClosed)
                {
                    // Closed by its owner: the end of the changes, not a failure.
                    return false;
                }
            }

            public ValueTask DisposeAsync()
            {
                return default(ValueTask);
            }
        }
    }
}
