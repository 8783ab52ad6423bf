// The managed half of the C ABI: SafeHandles for the native objects, the completion
// callbacks, and the copying of results out of native memory. Written in the C# subset
// that Mono 6.8's mcs accepts (see shared/dotnet/RECIPE.md, section 4).
using System;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using Kahuna.Client.Native;

namespace Kahuna.Client
{
    /// <summary>Owns a native <c>KahunaClient</c>; freeing it completes the calls in flight.</summary>
    internal sealed unsafe class ClientHandle : SafeHandle
    {
        internal ClientHandle(IntPtr p) : base(IntPtr.Zero, true) { SetHandle(p); }
        public override bool IsInvalid => handle == IntPtr.Zero;
        protected override bool ReleaseHandle()
        {
            NativeMethods.kahuna_client_free((Native.KahunaClient*)handle);
            return true;
        }
    }

    /// <summary>Owns a native <c>KahunaLock</c>; freeing it releases a lock still held.</summary>
    internal sealed unsafe class LockHandle : SafeHandle
    {
        internal LockHandle(IntPtr p) : base(IntPtr.Zero, true) { SetHandle(p); }
        public override bool IsInvalid => handle == IntPtr.Zero;
        protected override bool ReleaseHandle()
        {
            NativeMethods.kahuna_lock_free((Native.KahunaLock*)handle);
            return true;
        }
    }

    /// <summary>Owns a native <c>KahunaCancel</c>, one per call that has a cancellable token.</summary>
    internal sealed unsafe class CancelHandle : SafeHandle
    {
        internal CancelHandle() : base(IntPtr.Zero, true) { SetHandle((IntPtr)NativeMethods.kahuna_cancel_new()); }
        public override bool IsInvalid => handle == IntPtr.Zero;

        internal void Cancel()
        {
            bool added = false;
            try
            {
                DangerousAddRef(ref added);
                NativeMethods.kahuna_cancel_cancel((Native.KahunaCancel*)handle);
            }
            catch (ObjectDisposedException)
            {
                // The call already completed.
            }
            finally
            {
                if (added) DangerousRelease();
            }
        }

        protected override bool ReleaseHandle()
        {
            NativeMethods.kahuna_cancel_free((Native.KahunaCancel*)handle);
            return true;
        }
    }

    /// <summary>Copies one call's result out of native memory while the callback runs.</summary>
    internal unsafe delegate T ResultDecoder<T>(int status, Native.KahunaResult* result);

    /// <summary>One call in flight: the target of the GCHandle passed as <c>user_data</c>.</summary>
    internal abstract class PendingCall
    {
        internal abstract unsafe void Complete(int status, Native.KahunaResult* result);
        internal abstract Task Completion { get; }
    }

    internal sealed class PendingCall<T> : PendingCall
    {
        private readonly TaskCompletionSource<T> _tcs =
            new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly ResultDecoder<T> _decode;
        private readonly CancellationToken _token;
        private readonly InFlight _owner;
        internal CancelHandle Cancel;
        internal CancellationTokenRegistration Registration;

        internal PendingCall(ResultDecoder<T> decode, CancellationToken token, InFlight owner)
        {
            _decode = decode;
            _token = token;
            _owner = owner;
        }

        internal Task<T> Task => _tcs.Task;
        internal override Task Completion => _tcs.Task;

        internal override unsafe void Complete(int status, Native.KahunaResult* result)
        {
            try
            {
                if (status == NativeMethods.KAHUNA_STATUS_OK)
                {
                    T value = _decode(status, result);
                    if (!_tcs.TrySetResult(value))
                    {
                        var d = value as IDisposable;
                        if (d != null) d.Dispose();
                    }
                }
                else if (status == NativeMethods.KAHUNA_STATUS_CANCELLED && _token.IsCancellationRequested)
                {
                    _tcs.TrySetCanceled(_token);
                }
                else
                {
                    var e = Interop.Error(status, result);
                    if (_owner != null && _owner.Logger != null)
                    {
                        var level = status == NativeMethods.KAHUNA_STATUS_PANIC || status == NativeMethods.KAHUNA_STATUS_INTERNAL
                            ? KahunaLogLevel.Error : KahunaLogLevel.Warning;
                        Interop.Log(_owner.Logger, level, "kahuna call failed: " + e.Message);
                    }
                    _tcs.TrySetException(e);
                }
            }
            catch (Exception e)
            {
                _tcs.TrySetException(e);
            }
            finally
            {
                Release();
            }
        }

        /// <summary>Frees what the call held; also used when the call never started.</summary>
        internal void Release()
        {
            try { Registration.Dispose(); } catch (Exception) { }
            if (Cancel != null) Cancel.Dispose();
            if (_owner != null) _owner.Remove(this);
        }

        internal void Fail(Exception e)
        {
            _tcs.TrySetException(e);
        }
    }

    /// <summary>The calls in flight on one client, so disposing can wait for them.</summary>
    internal sealed class InFlight
    {
        /// <summary>The client's <see cref="KahunaClientOptions.Logger"/> (null: none).</summary>
        internal Action<KahunaLogLevel, string> Logger;
        private readonly ConcurrentDictionary<PendingCall, byte> _calls = new ConcurrentDictionary<PendingCall, byte>();
        internal void Add(PendingCall c) { _calls[c] = 0; }
        internal void Remove(PendingCall c) { byte _b; _calls.TryRemove(c, out _b); }

        internal Task WhenAllDone()
        {
            var tasks = new System.Collections.Generic.List<Task>();
            foreach (var c in _calls.Keys) tasks.Add(c.Completion);
            if (tasks.Count == 0) return Task.CompletedTask;
            // Faults belong to each call's own awaiter.
            return Task.WhenAll(tasks).ContinueWith(t => { var ignored = t.Exception; },
                TaskContinuationOptions.ExecuteSynchronously);
        }
    }

    /// <summary>Completion plumbing shared by every call.</summary>
    internal static unsafe class Interop
    {
        private static long s_live;

        // One delegate instance per callback type, kept alive for the whole process so the
        // GC never collects one while native threads may still call it. csbindgen emits a
        // delegate type per function; they all share one signature and one method.
        internal static readonly NativeMethods.kahuna_kv_get_callback_delegate KvGet = OnComplete;
        internal static readonly NativeMethods.kahuna_kv_set_callback_delegate KvSet = OnComplete;
        internal static readonly NativeMethods.kahuna_kv_delete_callback_delegate KvDelete = OnComplete;
        internal static readonly NativeMethods.kahuna_kv_extend_callback_delegate KvExtend = OnComplete;
        internal static readonly NativeMethods.kahuna_kv_exists_callback_delegate KvExists = OnComplete;
        internal static readonly NativeMethods.kahuna_kv_scan_callback_delegate KvScan = OnComplete;
        internal static readonly NativeMethods.kahuna_txn_commit_callback_delegate TxnCommit = OnComplete;
        internal static readonly NativeMethods.kahuna_sequence_next_callback_delegate SequenceNext = OnComplete;
        internal static readonly NativeMethods.kahuna_lock_acquire_callback_delegate LockAcquire = OnComplete;
        internal static readonly NativeMethods.kahuna_lock_acquire_permit_callback_delegate LockAcquirePermit = OnComplete;
        internal static readonly NativeMethods.kahuna_lock_get_info_callback_delegate LockGetInfo = OnComplete;
        internal static readonly NativeMethods.kahuna_lock_extend_callback_delegate LockExtend = OnComplete;
        internal static readonly NativeMethods.kahuna_lock_release_callback_delegate LockRelease = OnComplete;
        internal static readonly NativeMethods.kahuna_lock_on_lost_callback_delegate LockOnLost = OnComplete;
        internal static readonly NativeMethods.kahuna_lock_unlock_callback_delegate LockUnlock = OnComplete;
        internal static readonly NativeMethods.kahuna_lock_extend_by_owner_callback_delegate LockExtendByOwner = OnComplete;
        internal static readonly NativeMethods.kahuna_kv_history_callback_delegate KvHistory = OnComplete;
        internal static readonly NativeMethods.kahuna_cluster_status_callback_delegate ClusterStatus = OnComplete;
        internal static readonly NativeMethods.kahuna_cluster_transfer_leader_callback_delegate ClusterTransferLeader = OnComplete;
        internal static readonly NativeMethods.kahuna_sequence_peek_callback_delegate SequencePeek = OnComplete;
        internal static readonly NativeMethods.kahuna_watch_open_callback_delegate WatchOpen = OnComplete;
        internal static readonly NativeMethods.kahuna_watch_next_callback_delegate WatchNext = OnComplete;
        internal static readonly NativeMethods.kahuna_election_campaign_callback_delegate ElectionCampaign = OnComplete;
        internal static readonly NativeMethods.kahuna_election_proclaim_callback_delegate ElectionProclaim = OnComplete;
        internal static readonly NativeMethods.kahuna_election_leader_callback_delegate ElectionLeader = OnComplete;
        internal static readonly NativeMethods.kahuna_election_observe_callback_delegate ElectionObserve = OnComplete;
        internal static readonly NativeMethods.kahuna_observer_next_callback_delegate ObserverNext = OnComplete;
        internal static readonly NativeMethods.kahuna_kv_get_many_callback_delegate KvGetMany = OnComplete;
        internal static readonly NativeMethods.kahuna_kv_set_many_callback_delegate KvSetMany = OnComplete;
        internal static readonly NativeMethods.kahuna_kv_delete_many_callback_delegate KvDeleteMany = OnComplete;
        internal static readonly NativeMethods.kahuna_kv_scan_range_callback_delegate KvScanRange = OnComplete;
        internal static readonly NativeMethods.kahuna_rate_check_callback_delegate RateCheck = OnComplete;

        static Interop()
        {
            // The native runtime's threads attach to the CLR on their first callback; Mono
            // cannot exit (or unload a domain) while they live, so stop them on the way out.
            AppDomain.CurrentDomain.ProcessExit += delegate { Shutdown(); };
            AppDomain.CurrentDomain.DomainUnload += delegate { Shutdown(); };
        }

        private static int s_shutdown;

        private static void Shutdown()
        {
            if (Interlocked.Exchange(ref s_shutdown, 1) != 0) return;
            try { NativeMethods.kahuna_runtime_shutdown(); } catch (Exception) { }
        }

        /// <summary>Native calls whose callback has not run yet (their GCHandles are allocated).</summary>
        internal static long Live => Interlocked.Read(ref s_live);

        /// <summary>Runs on a runtime thread of the native library. Never throws.</summary>
        private static void OnComplete(ulong userData, int status, Native.KahunaResult* result)
        {
            try
            {
                // The runtime's threads attach to the CLR on their first callback; as
                // foreground threads they would keep the process (Mono) from exiting.
                var current = Thread.CurrentThread;
                if (!current.IsBackground) current.IsBackground = true;
                GCHandle h = GCHandle.FromIntPtr(new IntPtr((long)userData));
                var call = h.Target as PendingCall;
                h.Free();
                Interlocked.Decrement(ref s_live);
                if (call != null) call.Complete(status, result);
            }
            catch (Exception)
            {
                // An exception must never unwind into native code.
            }
        }

        /// <summary>
        /// Prepares a call: its TaskCompletionSource, a GCHandle for user_data and, when
        /// the token can be cancelled, a native cancel source wired to it.
        /// </summary>
        internal static PendingCall<T> Begin<T>(ResultDecoder<T> decode, CancellationToken token, InFlight owner,
            out ulong userData, out Native.KahunaCancel* cancel)
        {
            var call = new PendingCall<T>(decode, token, owner);
            cancel = null;
            if (token.CanBeCanceled)
            {
                call.Cancel = new CancelHandle();
                cancel = (Native.KahunaCancel*)call.Cancel.DangerousGetHandle();
                var ch = call.Cancel;
                call.Registration = token.Register(() => ch.Cancel());
            }
            if (owner != null) owner.Add(call);
            GCHandle h = GCHandle.Alloc(call);
            Interlocked.Increment(ref s_live);
            userData = (ulong)(long)GCHandle.ToIntPtr(h);
            return call;
        }

        /// <summary>Undoes Begin when the native function could not be called.</summary>
        internal static void Abandon<T>(PendingCall<T> call, ulong userData, Exception e)
        {
            GCHandle h = GCHandle.FromIntPtr(new IntPtr((long)userData));
            h.Free();
            Interlocked.Decrement(ref s_live);
            call.Release();
            call.Fail(e);
        }

        internal static Exception Error(int status, Native.KahunaResult* result)
        {
            string message = result == null ? "" : Text(result->message);
            if (status == NativeMethods.KAHUNA_STATUS_CLOSED) return new ObjectDisposedException("KahunaClient", message);
            if (status == NativeMethods.KAHUNA_STATUS_CANCELLED) return new OperationCanceledException(message);
            return new KahunaException((KahunaErrorCode)status, message);
        }

        /// <summary>Gives a message to a user's logger; whatever the logger throws is ignored.</summary>
        internal static void Log(Action<KahunaLogLevel, string> logger, KahunaLogLevel level, string message)
        {
            if (logger == null) return;
            try
            {
                logger(level, message);
            }
            catch (Exception)
            {
                // A logger must never break a call, nor unwind into native code.
            }
        }

        // ---- the enums' values on the C ABI: mapped one by one, never cast --------------

        internal static int Tier(LockDurability d)
        {
            switch (d)
            {
                case LockDurability.Persistent: return NativeMethods.KAHUNA_DURABILITY_PERSISTENT;
                case LockDurability.Ephemeral: return NativeMethods.KAHUNA_DURABILITY_EPHEMERAL;
                default: throw new ArgumentOutOfRangeException("durability", d, "not a LockDurability");
            }
        }

        internal static int Tier(KeyValueDurability d)
        {
            switch (d)
            {
                case KeyValueDurability.Persistent: return NativeMethods.KAHUNA_DURABILITY_PERSISTENT;
                case KeyValueDurability.Ephemeral: return NativeMethods.KAHUNA_DURABILITY_EPHEMERAL;
                default: throw new ArgumentOutOfRangeException("durability", d, "not a KeyValueDurability");
            }
        }

        internal static int Tier(RateLimiting.RateLimitDurability d)
        {
            switch (d)
            {
                case RateLimiting.RateLimitDurability.Persistent: return NativeMethods.KAHUNA_DURABILITY_PERSISTENT;
                case RateLimiting.RateLimitDurability.Ephemeral: return NativeMethods.KAHUNA_DURABILITY_EPHEMERAL;
                default: throw new ArgumentOutOfRangeException("durability", d, "not a RateLimitDurability");
            }
        }

        internal static void Check(SequenceDurability d)
        {
            if (d != SequenceDurability.Persistent)
                throw new ArgumentOutOfRangeException("durability", d, "sequences are persistent");
        }

        /// <summary>The set condition of <paramref name="flags"/> (the C ABI's own type): Set and
        /// SetNoRevision (or None) alone write always; with them at most one of SetIfExists,
        /// SetIfNotExists.</summary>
        internal static KahunaSetCondition Condition(KeyValueFlags flags)
        {
            var condition = flags & ~(KeyValueFlags.Set | KeyValueFlags.SetNoRevision);
            switch (condition)
            {
                case KeyValueFlags.None: return KahunaSetCondition.Always;
                case KeyValueFlags.SetIfExists: return KahunaSetCondition.IfExists;
                case KeyValueFlags.SetIfNotExists: return KahunaSetCondition.IfNotExists;
                case KeyValueFlags.SetIfEqualToValue:
                case KeyValueFlags.SetIfEqualToRevision:
                    throw new ArgumentException(
                        "use TryCompareValueAndSetKeyValue or TryCompareRevisionAndSetKeyValue", "flags");
                default:
                    throw new ArgumentException("not a valid combination of KeyValueFlags: " + flags, "flags");
            }
        }

        internal static Native.KahunaBytes Bytes(byte* p, int len)
        {
            var b = new Native.KahunaBytes();
            b.ptr = p;
            b.len = new UIntPtr((uint)len);
            return b;
        }

        internal static byte[] Copy(Native.KahunaBytes b)
        {
            ulong n = b.len.ToUInt64();
            if (n == 0 || b.ptr == null) return new byte[0];
            var a = new byte[checked((int)n)];
            Marshal.Copy((IntPtr)b.ptr, a, 0, a.Length);
            return a;
        }

        internal static string Text(Native.KahunaBytes b)
        {
            ulong n = b.len.ToUInt64();
            if (n == 0 || b.ptr == null) return "";
            return Encoding.UTF8.GetString(b.ptr, checked((int)n));
        }

        internal static byte[] Utf8(string s, string name)
        {
            if (s == null) throw new ArgumentNullException(name);
            return Encoding.UTF8.GetBytes(s);
        }

        /// <summary>UTF-8 of an optional setting (null stays null: not set).</summary>
        internal static byte[] OptionalUtf8(string s)
        {
            return s == null ? null : Encoding.UTF8.GetBytes(s);
        }

        internal static ulong Millis(TimeSpan t, string name)
        {
            if (t < TimeSpan.Zero) throw new ArgumentOutOfRangeException(name, "must not be negative");
            return (ulong)Math.Ceiling(t.TotalMilliseconds);
        }

        internal static KahunaKeyValue KeyValue(Native.KahunaKeyValue* kv, bool success, long revision,
            KeyValueDurability durability)
        {
            if (kv->present == 0)
                return new KahunaKeyValue(null, success, revision, null, 0, 0, null, durability);
            DateTimeOffset? expires = null;
            if (kv->expires_at_ms != 0) expires = DateTimeOffset.FromUnixTimeMilliseconds((long)kv->expires_at_ms);
            return new KahunaKeyValue(Text(kv->key), success, (long)kv->mod_revision, Copy(kv->value),
                (long)kv->create_revision, (long)kv->version, expires, durability);
        }

        internal static KahunaLockInfo LockInfo(string resource, Native.KahunaLockInfo* info, LockDurability durability)
        {
            if (info->present == 0) return null;
            return new KahunaLockInfo(resource, Copy(info->owner), (long)info->fencing_token,
                DateTimeOffset.FromUnixTimeMilliseconds((long)info->expires_at_ms),
                TimeSpan.FromMilliseconds(info->remaining_ms), durability, Copy(info->value), (int)info->waiters,
                (int)info->permits, (int)info->holders);
        }
    }
}

namespace Kahuna.Client
{
    /// <summary>Starts one native call on a handle: fills the request and calls the export.</summary>
    internal unsafe delegate void NativeStart(IntPtr handle, Native.KahunaCancel* cancel, ulong userData);

    /// <summary>Pins managed byte arrays for the duration of one native call.</summary>
    internal sealed unsafe class Pins : IDisposable
    {
        private readonly System.Collections.Generic.List<GCHandle> _pinned = new System.Collections.Generic.List<GCHandle>();

        internal Native.KahunaBytes Bytes(byte[] a)
        {
            if (a == null || a.Length == 0) return Interop.Bytes(null, 0);
            GCHandle h = GCHandle.Alloc(a, GCHandleType.Pinned);
            _pinned.Add(h);
            return Interop.Bytes((byte*)h.AddrOfPinnedObject(), a.Length);
        }

        internal void* Array(object a)
        {
            GCHandle h = GCHandle.Alloc(a, GCHandleType.Pinned);
            _pinned.Add(h);
            return (void*)h.AddrOfPinnedObject();
        }

        public void Dispose()
        {
            foreach (var h in _pinned) h.Free();
            _pinned.Clear();
        }
    }

    internal static unsafe class Calls
    {
        /// <summary>
        /// Runs one asynchronous native call on <paramref name="handle"/>. Never blocks: the
        /// native function returns at once and completes the task from its own thread.
        /// </summary>
        internal static Task<T> Run<T>(SafeHandle handle, InFlight owner, ResultDecoder<T> decode,
            CancellationToken token, NativeStart start)
        {
            if (token.IsCancellationRequested) return Task.FromCanceled<T>(token);
            ulong userData;
            Native.KahunaCancel* cancel;
            var call = Interop.Begin(decode, token, owner, out userData, out cancel);
            bool added = false;
            try
            {
                handle.DangerousAddRef(ref added);
                start(handle.DangerousGetHandle(), cancel, userData);
            }
            catch (Exception e)
            {
                // The export was not reached (disposed handle, missing library): it never
                // took the call, so undo it here.
                Interop.Abandon(call, userData, e);
            }
            finally
            {
                if (added) handle.DangerousRelease();
            }
            return call.Task;
        }
    }
}
