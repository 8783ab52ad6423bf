// Watches: KahunaClient.Watch opens one; a KahunaWatch hands out the changes batch by batch
// (NextBatchAsync) or event by event (IAsyncEnumerable). The enumerator is written by hand:
// Mono's mcs has no async iterators and no `await foreach`.
using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using Kahuna.Client.Native;

namespace Kahuna.Client
{
    /// <summary>Owns a native <c>KahunaWatch</c>; freeing it completes a pending next.</summary>
    internal sealed unsafe class WatchHandle : SafeHandle
    {
        internal WatchHandle(IntPtr p) : base(IntPtr.Zero, true) { SetHandle(p); }
        public override bool IsInvalid => handle == IntPtr.Zero;
        protected override bool ReleaseHandle()
        {
            NativeMethods.kahuna_watch_free((Native.KahunaWatch*)handle);
            return true;
        }
    }

    /// <summary>What happened to a watched key.</summary>
    public enum KahunaWatchEventType
    {
        /// <summary>The key was written.</summary>
        Put = 0,
        /// <summary>The key was deleted.</summary>
        Delete = 1,
        /// <summary>The key expired.</summary>
        Expire = 2,
    }

    /// <summary>One change of a watched key.</summary>
    public sealed class KahunaWatchEvent
    {
        internal KahunaWatchEvent(KahunaWatchEventType type, string key, byte[] value, long revision,
            long createRevision, long version)
        {
            Type = type;
            Key = key;
            Value = value;
            Revision = revision;
            CreateRevision = createRevision;
            Version = version;
        }

        internal static unsafe KahunaWatchEvent From(Native.KahunaKeyEvent* e)
        {
            KahunaWatchEventType type;
            if (e->kind == NativeMethods.KAHUNA_EVENT_PUT) type = KahunaWatchEventType.Put;
            else if (e->kind == NativeMethods.KAHUNA_EVENT_DELETE) type = KahunaWatchEventType.Delete;
            else if (e->kind == NativeMethods.KAHUNA_EVENT_EXPIRE) type = KahunaWatchEventType.Expire;
            else throw new KahunaException(KahunaErrorCode.Internal, "unknown watch event kind " + e->kind);
            // Deletes and expiries carry the key's revisions but no value.
            byte[] value = type == KahunaWatchEventType.Put ? Interop.Copy(e->kv.value) : null;
            return new KahunaWatchEvent(type, Interop.Text(e->kv.key), value, (long)e->revision,
                (long)e->kv.create_revision, (long)e->kv.version);
        }

        /// <summary>Put, delete or expiry.</summary>
        public KahunaWatchEventType Type { get; }
        /// <summary>The key.</summary>
        public string Key { get; }
        /// <summary>The value written (null for a delete or an expiry).</summary>
        public byte[] Value { get; }
        /// <summary>The value as UTF-8 text (null for a delete or an expiry).</summary>
        public string ValueAsString => Value == null ? null : Encoding.UTF8.GetString(Value);
        /// <summary>The revision of the change; the changes of one transaction share it.</summary>
        public long Revision { get; }
        /// <summary>The revision that created the key.</summary>
        public long CreateRevision { get; }
        /// <summary>The key's version after a put (changes since creation), the last one before a
        /// delete or expiry.</summary>
        public long Version { get; }

        /// <inheritdoc/>
        public override string ToString() => Type + " " + Key + " @" + Revision;
    }

    /// <summary>One message of a watch: the changes of one or more whole revisions, or none (a
    /// progress notification: nothing changed up to <see cref="Revision"/>).</summary>
    public sealed class KahunaWatchBatch
    {
        internal KahunaWatchBatch(IReadOnlyList<KahunaWatchEvent> events, long revision)
        {
            Events = events;
            Revision = revision;
        }

        /// <summary>The changes, oldest first.</summary>
        public IReadOnlyList<KahunaWatchEvent> Events { get; }
        /// <summary>Every change to the watched keys up to and including this revision has been delivered.</summary>
        public long Revision { get; }
        /// <summary>No changes: a progress notification.</summary>
        public bool IsProgress => Events.Count == 0;
    }

    /// <summary>
    /// A watch on a key or a prefix, from <see cref="KahunaClient.Watch"/>: every change in
    /// revision order, exactly once, resumed across member failures by the core client. Read
    /// it with <see cref="NextBatchAsync"/> or as an <see cref="IAsyncEnumerable{T}"/> of events
    /// (one reader at a time); dispose it to close it. Disposing ends an enumeration in
    /// progress (its pending <c>MoveNextAsync</c> returns false) and fails a pending
    /// <see cref="NextBatchAsync"/> with <see cref="ObjectDisposedException"/>.
    /// </summary>
    public sealed class KahunaWatch : IAsyncEnumerable<KahunaWatchEvent>, IAsyncDisposable, IDisposable
    {
        private readonly KahunaClient _client;
        private readonly WatchHandle _handle;
        private int _closed;
        private long _revisionAtClose;

        internal KahunaWatch(KahunaClient client, WatchHandle handle, string key, bool prefix)
        {
            _client = client;
            _handle = handle;
            Key = key;
            IsPrefix = prefix;
        }

        /// <summary>The watched key, or prefix.</summary>
        public string Key { get; }

        /// <summary>Whether every key starting with <see cref="Key"/> is watched.</summary>
        public bool IsPrefix { get; }

        /// <summary>Every change up to and including this revision has been delivered.</summary>
        public unsafe long Revision
        {
            get
            {
                bool added = false;
                try
                {
                    _handle.DangerousAddRef(ref added);
                    return (long)NativeMethods.kahuna_watch_revision((Native.KahunaWatch*)_handle.DangerousGetHandle());
                }
                catch (ObjectDisposedException)
                {
                    return Interlocked.Read(ref _revisionAtClose);
                }
                finally
                {
                    if (added) _handle.DangerousRelease();
                }
            }
        }

        internal bool IsClosed => Volatile.Read(ref _closed) != 0;

        /// <summary>
        /// The next message: changes of one or more whole revisions, or a progress notification
        /// while nothing changes. Fails with <see cref="KahunaException"/> (for example
        /// <see cref="KahunaErrorCode.Compacted"/>: the changes it needs are no longer retained;
        /// read the keys again and watch from that read's revision), and with
        /// <see cref="ObjectDisposedException"/> once the watch or its client is disposed.
        /// Cancelling it loses nothing: the next call continues where this one stopped.
        /// </summary>
        public unsafe Task<KahunaWatchBatch> NextBatchAsync(CancellationToken cancellationToken = default)
        {
            if (IsClosed) throw new ObjectDisposedException(nameof(KahunaWatch));
            return Calls.Run(_handle, _client.InFlight, delegate(int status, Native.KahunaResult* res)
            {
                int n = checked((int)res->events_len.ToUInt64());
                var events = new List<KahunaWatchEvent>(n);
                for (int i = 0; i < n; i++) events.Add(KahunaWatchEvent.From(&res->events[i]));
                return new KahunaWatchBatch(events, (long)res->revision);
            }, cancellationToken, delegate(IntPtr h, Native.KahunaCancel* cancel, ulong ud)
            {
                NativeMethods.kahuna_watch_next((Native.KahunaWatch*)h, cancel, ud, Interop.WatchNext);
            });
        }

        /// <summary>The changes one by one, skipping progress notifications; ends when the watch is
        /// disposed. <paramref name="cancellationToken"/> cancels a pending <c>MoveNextAsync</c>.
        /// Disposing the enumerator leaves the watch open.</summary>
        public IAsyncEnumerator<KahunaWatchEvent> GetAsyncEnumerator(CancellationToken cancellationToken = default)
        {
            return new Enumerator(this, cancellationToken);
        }

        /// <summary>Closes the watch (a pending next completes at once) and frees it.</summary>
        public ValueTask DisposeAsync()
        {
            Dispose();
            return default(ValueTask);
        }

        /// <summary>Closes the watch (a pending next completes at once) and frees it.</summary>
        public void Dispose()
        {
            if (Interlocked.Exchange(ref _closed, 1) != 0) return;
            Interlocked.Exchange(ref _revisionAtClose, Revision);
            _handle.Dispose();
        }

        private sealed class Enumerator : IAsyncEnumerator<KahunaWatchEvent>
        {
            private readonly KahunaWatch _watch;
            private readonly CancellationToken _token;
            private IReadOnlyList<KahunaWatchEvent> _batch;
            private int _next;

            internal Enumerator(KahunaWatch watch, CancellationToken token)
            {
                _watch = watch;
                _token = token;
            }

            public KahunaWatchEvent Current { get; private set; }

            public async ValueTask<bool> MoveNextAsync()
            {
                while (_batch == null || _next >= _batch.Count)
                {
                    if (_watch.IsClosed) return false;
                    try
                    {
                        var batch = await _watch.NextBatchAsync(_token).ConfigureAwait(false);
                        _batch = batch.Events;
                        _next = 0;
                    }
                    catch (ObjectDisposedException) when (_watch.IsClosed)
                    {
                        // Closed by its owner: the end of the changes, not a failure.
                        return false;
                    }
                }
                Current = _batch[_next++];
                return true;
            }

            public ValueTask DisposeAsync()
            {
                return default(ValueTask);
            }
        }
    }
}
