// Rate limiters shared by every process that uses the same Kahuna cluster. The fixed window,
// sliding window and token bucket limiters are the server's own (KahunaClient.CheckRateLimit):
// one round trip decides, atomically across every client, in the cluster's time. Each
// partition is one limiter on the server, named "ratelimit/{name}/{partition}". The
// concurrency limiter is a server semaphore of that name (KahunaClient.AcquirePermit): each
// lease is a permit with a lease of its own, renewed while held.
using System;
using System.Globalization;
using System.Threading;
using System.Threading.Tasks;

namespace Kahuna.Client.RateLimiting
{
    /// <summary>Where a rate limiter lives (numbered as <see cref="LockDurability"/>).</summary>
    public enum RateLimitDurability
    {
        /// <summary>In the leader's memory: no log write (much faster); it starts afresh after a leader change.</summary>
        Ephemeral = 0,
        /// <summary>Replicated: the count survives a failover, and a retried check is counted once.</summary>
        Persistent = 1,
    }

    /// <summary>How a server-side rate limiter counts (<see cref="KahunaClient.CheckRateLimit"/>).</summary>
    public sealed class KahunaRatePolicy
    {
        private KahunaRatePolicy(int nativeKind, long limit, long windowMs, long refillPerSecond)
        {
            NativeKind = nativeKind;
            Limit = limit;
            WindowMs = windowMs;
            RefillPerSecond = refillPerSecond;
        }

        internal int NativeKind { get; }
        internal long WindowMs { get; }

        /// <summary>Units per window, or the bucket's capacity.</summary>
        public long Limit { get; }

        /// <summary>The window's length (zero for a token bucket).</summary>
        public TimeSpan Window => TimeSpan.FromMilliseconds(WindowMs);

        /// <summary>Tokens added per second (zero for the windows).</summary>
        public long RefillPerSecond { get; }

        /// <summary>At most <paramref name="limit"/> units per <paramref name="window"/> (whole milliseconds, at
        /// most a day), windows aligned to the cluster's clock.</summary>
        public static KahunaRatePolicy FixedWindow(long limit, TimeSpan window)
        {
            return new KahunaRatePolicy(Native.NativeMethods.KAHUNA_RATE_FIXED_WINDOW, NotNegative(limit, nameof(limit)),
                Millis(window), 0);
        }

        /// <summary>At most <paramref name="limit"/> units in any <paramref name="window"/> (whole milliseconds, at
        /// most a day), estimated from the current and the previous fixed window.</summary>
        public static KahunaRatePolicy SlidingWindow(long limit, TimeSpan window)
        {
            return new KahunaRatePolicy(Native.NativeMethods.KAHUNA_RATE_SLIDING_WINDOW, NotNegative(limit, nameof(limit)),
                Millis(window), 0);
        }

        /// <summary>A bucket of <paramref name="capacity"/> tokens, starting full, refilled at
        /// <paramref name="refillPerSecond"/> tokens per second.</summary>
        public static KahunaRatePolicy TokenBucket(long capacity, long refillPerSecond)
        {
            return new KahunaRatePolicy(Native.NativeMethods.KAHUNA_RATE_TOKEN_BUCKET, NotNegative(capacity, nameof(capacity)),
                0, NotNegative(refillPerSecond, nameof(refillPerSecond)));
        }

        private static long NotNegative(long n, string name)
        {
            if (n < 0) throw new ArgumentOutOfRangeException(name, "must not be negative");
            return n;
        }

        private static long Millis(TimeSpan window)
        {
            if (window < TimeSpan.Zero || window.Ticks % TimeSpan.TicksPerMillisecond != 0)
                throw new ArgumentOutOfRangeException(nameof(window), window, "a rate window is whole milliseconds");
            return window.Ticks / TimeSpan.TicksPerMillisecond;
        }
    }

    /// <summary>The answer of a rate limiter.</summary>
    public sealed class KahunaRateLimitResult
    {
        internal KahunaRateLimitResult(bool isAllowed, long remaining, TimeSpan retryAfter) : this(isAllowed, remaining, retryAfter, 0)
        {
        }

        internal KahunaRateLimitResult(bool isAllowed, long remaining, TimeSpan retryAfter, long revision)
        {
            IsAllowed = isAllowed;
            Remaining = remaining;
            RetryAfter = retryAfter;
            Revision = revision;
        }

        /// <summary>The store revision of a persistent limiter's decision (0 otherwise).</summary>
        public long Revision { get; }

        /// <summary>Whether the permits were granted.</summary>
        public bool IsAllowed { get; }

        /// <summary>Permits still available after this decision (in the current window, or tokens left).</summary>
        public long Remaining { get; }

        /// <summary>When refused: how long until the requested permits could be available (zero when allowed).</summary>
        public TimeSpan RetryAfter { get; }
    }

    /// <summary>
    /// A limiter whose state lives in Kahuna, so every process using the same cluster shares it.
    /// Every limiter is decided by the server in the cluster's time.
    /// </summary>
    public abstract class KahunaRateLimiter
    {
        /// <summary>Creates a persistent limiter named <paramref name="name"/> (each partition is the server
        /// limiter, or key, <c>ratelimit/{name}/{partition}</c>).</summary>
        protected KahunaRateLimiter(KahunaClient client, string name) : this(client, name, RateLimitDurability.Persistent)
        {
        }

        /// <summary>Creates a limiter named <paramref name="name"/> on the <paramref name="durability"/> tier.</summary>
        protected KahunaRateLimiter(KahunaClient client, string name, RateLimitDurability durability)
        {
            if (client == null) throw new ArgumentNullException(nameof(client));
            if (string.IsNullOrEmpty(name)) throw new ArgumentException("must not be empty", nameof(name));
            if (durability != RateLimitDurability.Persistent && durability != RateLimitDurability.Ephemeral)
                throw new ArgumentOutOfRangeException(nameof(durability), durability, "not a RateLimitDurability");
            Client = client;
            Name = name;
            Durability = durability;
        }

        /// <summary>Where the limiter lives: replicated (persistent, the default) or in the leader's memory
        /// (ephemeral: faster, and it starts afresh after a leader change).</summary>
        public RateLimitDurability Durability { get; }

        /// <summary>The client the limiter's state is read and written through.</summary>
        protected KahunaClient Client { get; }

        /// <summary>The limiter's name.</summary>
        public string Name { get; }

        /// <summary>The clock of <see cref="NowMs"/>, for limiters built on <see cref="Update{T}"/> (default:
        /// <see cref="DateTimeOffset.UtcNow"/>). The built-in limiters ignore it: the server decides in the
        /// cluster's time (the concurrency limiter used it before it moved to server semaphores).</summary>
        public Func<DateTimeOffset> Clock { get; set; } = () => DateTimeOffset.UtcNow;

        /// <summary>The name (server limiter or key) of one partition's state.</summary>
        protected string KeyOf(string partitionKey)
        {
            return "ratelimit/" + Name + "/" + (partitionKey ?? "");
        }

        /// <summary>One decision of the server limiter of <paramref name="partitionKey"/>.</summary>
        internal Task<KahunaRateLimitResult> Check(string partitionKey, KahunaRatePolicy policy, int permits,
            CancellationToken cancellationToken)
        {
            return Client.CheckRateLimit(KeyOf(partitionKey), policy, permits, Durability, cancellationToken);
        }

        internal static TimeSpan WholeMillis(TimeSpan window, string name)
        {
            if (window < TimeSpan.FromMilliseconds(1)) throw new ArgumentOutOfRangeException(name);
            return TimeSpan.FromMilliseconds(Math.Ceiling(window.TotalMilliseconds));
        }

        /// <summary>Now, in Unix milliseconds, by <see cref="Clock"/>.</summary>
        protected long NowMs()
        {
            return Clock().ToUnixTimeMilliseconds();
        }

        /// <summary>What to do with a partition's state.</summary>
        protected sealed class Decision<T>
        {
            /// <summary>Writes <paramref name="state"/> (expiring after <paramref name="ttl"/>) and answers <paramref name="result"/> once written.</summary>
            public static Decision<T> Write(string state, TimeSpan ttl, T result)
            {
                var d = new Decision<T>();
                d.State = state;
                d.Ttl = ttl;
                d.Result = result;
                return d;
            }

            /// <summary>Answers <paramref name="result"/> without writing.</summary>
            public static Decision<T> Answer(T result)
            {
                var d = new Decision<T>();
                d.Result = result;
                return d;
            }

            internal string State;
            internal TimeSpan Ttl;
            internal T Result;
        }

        /// <summary>
        /// Reads the state of <paramref name="key"/> (null when there is none), lets
        /// <paramref name="decide"/> choose, and writes by compare-and-set on the revision read;
        /// when someone else wrote first, decides again on what they wrote.
        /// </summary>
        protected async Task<T> Update<T>(string key, Func<string, long, Decision<T>> decide, CancellationToken cancellationToken)
        {
            var current = await Client.GetKeyValue(key, KeyValueDurability.Persistent, cancellationToken).ConfigureAwait(false);
            while (true)
            {
                bool exists = current.Key != null && current.Value != null;
                string state = exists ? current.ValueAsString() : null;
                var d = decide(state, NowMs());
                if (d.State == null) return d.Result;
                var ttl = d.Ttl < TimeSpan.FromMilliseconds(1) ? TimeSpan.FromMilliseconds(1) : d.Ttl;
                var r = await Client.TryCompareRevisionAndSetKeyValue(key, d.State, exists ? current.Revision : 0, ttl,
                    KeyValueDurability.Persistent, cancellationToken).ConfigureAwait(false);
                if (r.Success) return d.Result;
                current = r;
            }
        }

        internal static long ParseLong(string s)
        {
            return long.Parse(s, NumberStyles.Integer, CultureInfo.InvariantCulture);
        }

        internal static string Text(long n)
        {
            return n.ToString(CultureInfo.InvariantCulture);
        }

        internal static void CheckPermits(int permits, long limit)
        {
            if (permits < 1) throw new ArgumentOutOfRangeException(nameof(permits), "must be at least 1");
            if (permits > limit) throw new ArgumentOutOfRangeException(nameof(permits), "more than the limit");
        }
    }

    /// <summary>
    /// At most <c>permitLimit</c> permits per partition in each window of <c>window</c>, windows
    /// aligned to the cluster's clock (a window starts at a multiple of its length). Decided by the
    /// server in one round trip (<see cref="KahunaClient.CheckRateLimit"/>).
    /// </summary>
    public sealed class KahunaFixedWindowRateLimiter : KahunaRateLimiter
    {
        private readonly KahunaRatePolicy _policy;

        /// <summary>A persistent limiter of <paramref name="permitLimit"/> permits per <paramref name="window"/>
        /// (rounded up to whole milliseconds; at most a day).</summary>
        public KahunaFixedWindowRateLimiter(KahunaClient client, string name, long permitLimit, TimeSpan window)
            : this(client, name, permitLimit, window, RateLimitDurability.Persistent)
        {
        }

        /// <summary>A limiter of <paramref name="permitLimit"/> permits per <paramref name="window"/> on the
        /// <paramref name="durability"/> tier.</summary>
        public KahunaFixedWindowRateLimiter(KahunaClient client, string name, long permitLimit, TimeSpan window,
            RateLimitDurability durability) : base(client, name, durability)
        {
            if (permitLimit < 1) throw new ArgumentOutOfRangeException(nameof(permitLimit));
            _policy = KahunaRatePolicy.FixedWindow(permitLimit, WholeMillis(window, nameof(window)));
        }

        /// <summary>Takes <paramref name="permits"/> permits of <paramref name="partitionKey"/> in the current window, if there are that many left.</summary>
        public Task<KahunaRateLimitResult> TryAcquire(string partitionKey = "", int permits = 1,
            CancellationToken cancellationToken = default)
        {
            CheckPermits(permits, _policy.Limit);
            return Check(partitionKey, _policy, permits, cancellationToken);
        }
    }

    /// <summary>
    /// At most <c>permitLimit</c> permits per partition in any interval of <c>window</c>, estimated by
    /// the server from the current and the previous fixed window (the previous one weighted by how
    /// much of it the sliding window still covers), as Redis- and Cloudflare-style sliding windows do.
    /// Decided by the server in one round trip (<see cref="KahunaClient.CheckRateLimit"/>).
    /// </summary>
    public sealed class KahunaSlidingWindowRateLimiter : KahunaRateLimiter
    {
        private readonly KahunaRatePolicy _policy;

        /// <summary>A persistent limiter of <paramref name="permitLimit"/> permits in any <paramref name="window"/>
        /// (rounded up to whole milliseconds; at most a day).</summary>
        public KahunaSlidingWindowRateLimiter(KahunaClient client, string name, long permitLimit, TimeSpan window)
            : this(client, name, permitLimit, window, RateLimitDurability.Persistent)
        {
        }

        /// <summary>A limiter of <paramref name="permitLimit"/> permits in any <paramref name="window"/> on the
        /// <paramref name="durability"/> tier.</summary>
        public KahunaSlidingWindowRateLimiter(KahunaClient client, string name, long permitLimit, TimeSpan window,
            RateLimitDurability durability) : base(client, name, durability)
        {
            if (permitLimit < 1) throw new ArgumentOutOfRangeException(nameof(permitLimit));
            _policy = KahunaRatePolicy.SlidingWindow(permitLimit, WholeMillis(window, nameof(window)));
        }

        /// <summary>Takes <paramref name="permits"/> permits of <paramref name="partitionKey"/>, if fewer than the
        /// limit were taken in the last window.</summary>
        public Task<KahunaRateLimitResult> TryAcquire(string partitionKey = "", int permits = 1,
            CancellationToken cancellationToken = default)
        {
            CheckPermits(permits, _policy.Limit);
            return Check(partitionKey, _policy, permits, cancellationToken);
        }
    }

    /// <summary>
    /// A token bucket per partition: it holds at most <c>capacity</c> tokens, gains
    /// <c>tokensPerPeriod</c> every <c>replenishmentPeriod</c> (continuously), and each permit
    /// takes a token. Starts full. Decided by the server in one round trip
    /// (<see cref="KahunaClient.CheckRateLimit"/>), which refills a whole number of tokens per
    /// second: <c>tokensPerPeriod / replenishmentPeriod</c> must be one (2 per second, 60 per
    /// minute, 10 per 500 ms are; 1 per 3 seconds is not).
    /// </summary>
    public sealed class KahunaTokenBucketRateLimiter : KahunaRateLimiter
    {
        private readonly KahunaRatePolicy _policy;

        /// <summary>A persistent bucket of <paramref name="capacity"/> tokens refilled by <paramref name="tokensPerPeriod"/>
        /// every <paramref name="replenishmentPeriod"/>.</summary>
        /// <exception cref="ArgumentOutOfRangeException">The refill rate is not a whole number of tokens per
        /// second (the message says which rate it is), or a number is not positive.</exception>
        public KahunaTokenBucketRateLimiter(KahunaClient client, string name, long capacity, long tokensPerPeriod,
            TimeSpan replenishmentPeriod) : this(client, name, capacity, tokensPerPeriod, replenishmentPeriod,
            RateLimitDurability.Persistent)
        {
        }

        /// <summary>A bucket of <paramref name="capacity"/> tokens refilled by <paramref name="tokensPerPeriod"/>
        /// every <paramref name="replenishmentPeriod"/> on the <paramref name="durability"/> tier.</summary>
        /// <exception cref="ArgumentOutOfRangeException">The refill rate is not a whole number of tokens per
        /// second (the message says which rate it is), or a number is not positive.</exception>
        public KahunaTokenBucketRateLimiter(KahunaClient client, string name, long capacity, long tokensPerPeriod,
            TimeSpan replenishmentPeriod, RateLimitDurability durability) : base(client, name, durability)
        {
            if (capacity < 1) throw new ArgumentOutOfRangeException(nameof(capacity));
            if (tokensPerPeriod < 1) throw new ArgumentOutOfRangeException(nameof(tokensPerPeriod));
            if (replenishmentPeriod <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(replenishmentPeriod));
            // Exact: tokensPerPeriod * ticks-per-second / period-ticks must be a whole number.
            decimal scaled = (decimal)tokensPerPeriod * TimeSpan.TicksPerSecond;
            if (scaled % replenishmentPeriod.Ticks != 0)
            {
                double perSecond = tokensPerPeriod / replenishmentPeriod.TotalSeconds;
                throw new ArgumentOutOfRangeException(nameof(tokensPerPeriod),
                    "the token bucket's refill rate must be a whole number of tokens per second (the server refills " +
                    "whole tokens per second): " + tokensPerPeriod.ToString(CultureInfo.InvariantCulture) + " per " +
                    replenishmentPeriod.ToString("c", CultureInfo.InvariantCulture) + " is " +
                    perSecond.ToString("0.######", CultureInfo.InvariantCulture) + " per second");
            }
            _policy = KahunaRatePolicy.TokenBucket(capacity, (long)(scaled / replenishmentPeriod.Ticks));
        }

        /// <summary>Tokens added per second.</summary>
        public long RefillPerSecond => _policy.RefillPerSecond;

        /// <summary>Takes <paramref name="permits"/> tokens from the bucket of <paramref name="partitionKey"/>, if it has them.</summary>
        public Task<KahunaRateLimitResult> TryAcquire(string partitionKey = "", int permits = 1,
            CancellationToken cancellationToken = default)
        {
            CheckPermits(permits, _policy.Limit);
            return Check(partitionKey, _policy, permits, cancellationToken);
        }
    }

    /// <summary>
    /// At most <c>permitLimit</c> leases of a partition held at once. Each partition is the server
    /// semaphore <c>ratelimit/{name}/{partition}</c> of <c>permitLimit</c> permits
    /// (<see cref="KahunaClient.AcquirePermit"/>), so the limit holds across every process using the
    /// cluster, and a lease is a permit: it has a fencing token of its own, is renewed in the background
    /// for <c>leaseDuration</c> at a time while held, and is given back by disposing it. A lease whose
    /// holder stops renewing it (a crashed or cut-off process) lapses after <c>leaseDuration</c>; one that
    /// is merely kept (not disposed) stays held. Every limiter of a name must have the same
    /// <c>permitLimit</c> while anyone holds or waits for a lease of a partition; otherwise the call fails
    /// with <see cref="KahunaErrorCode.InvalidArgument"/>.
    /// </summary>
    public sealed class KahunaConcurrencyLimiter : KahunaRateLimiter
    {
        private readonly int _limit;
        private readonly TimeSpan _lease;

        /// <summary>A limiter of <paramref name="permitLimit"/> concurrent leases (1 to
        /// <see cref="KahunaClient.MaxPermits"/>), each renewed for <paramref name="leaseDuration"/> at a time
        /// while held and lapsing that long after its holder stops renewing it.</summary>
        public KahunaConcurrencyLimiter(KahunaClient client, string name, long permitLimit, TimeSpan leaseDuration)
            : base(client, name)
        {
            if (permitLimit < 1 || permitLimit > KahunaClient.MaxPermits)
                throw new ArgumentOutOfRangeException(nameof(permitLimit), permitLimit,
                    "a concurrency limiter (a server semaphore) has 1 to 10,000 permits");
            if (leaseDuration < TimeSpan.FromMilliseconds(1)) throw new ArgumentOutOfRangeException(nameof(leaseDuration));
            _limit = (int)permitLimit;
            _lease = TimeSpan.FromMilliseconds(Math.Ceiling(leaseDuration.TotalMilliseconds));
        }

        /// <summary>Takes a lease of <paramref name="partitionKey"/> if fewer than the limit are held (one
        /// attempt). Check <see cref="KahunaConcurrencyLease.IsAcquired"/>; dispose the lease to give it back.</summary>
        public Task<KahunaConcurrencyLease> TryAcquire(string partitionKey = "", CancellationToken cancellationToken = default)
        {
            return Acquire(partitionKey, TimeSpan.Zero, cancellationToken);
        }

        /// <summary>Takes a lease of <paramref name="partitionKey"/>, waiting up to <paramref name="wait"/> in the
        /// semaphore's queue while all are held (granted in arrival order as leases are given back). Check
        /// <see cref="KahunaConcurrencyLease.IsAcquired"/>; dispose the lease to give it back.</summary>
        public async Task<KahunaConcurrencyLease> Acquire(string partitionKey, TimeSpan wait,
            CancellationToken cancellationToken = default)
        {
            var permit = await Client.AcquirePermit(KeyOf(partitionKey), _limit, _lease, wait, TimeSpan.Zero,
                cancellationToken).ConfigureAwait(false);
            var info = permit.Holder;
            long holders = info == null ? (permit.IsAcquired ? 1 : _limit) : info.IsSemaphore ? info.Holders : 1;
            // Leases are renewed while held: when the first one frees up is not known, so a refusal
            // answers no wait (use Acquire with a wait to queue for one instead of polling).
            var result = new KahunaRateLimitResult(permit.IsAcquired, Math.Max(0, _limit - holders), TimeSpan.Zero);
            return new KahunaConcurrencyLease(permit, result);
        }
    }

    /// <summary>A lease of a <see cref="KahunaConcurrencyLimiter"/> (a permit of its semaphore); dispose it to
    /// give it back.</summary>
    public sealed class KahunaConcurrencyLease : IAsyncDisposable
    {
        private readonly KahunaLock _permit;

        internal KahunaConcurrencyLease(KahunaLock permit, KahunaRateLimitResult result)
        {
            _permit = permit;
            Result = result;
        }

        /// <summary>Whether the lease was granted (and not given back or lost since).</summary>
        public bool IsAcquired => _permit.IsAcquired;

        /// <summary>The limiter's answer: whether it was granted and how many leases were left then
        /// (<see cref="KahunaRateLimitResult.RetryAfter"/> is zero: leases are renewed while held, so when one
        /// frees up is not known).</summary>
        public KahunaRateLimitResult Result { get; }

        /// <summary>The lease's fencing token (its permit's, unique and increasing; 0 when not granted): fence
        /// writes with the partition's semaphore name and this token, or with <see cref="Permit"/>.</summary>
        public long FencingToken => _permit.FencingToken;

        /// <summary>Fires when the lease stops being held (given back, or its renewal failed).</summary>
        public CancellationToken Lost => _permit.Lost;

        /// <summary>The semaphore permit behind the lease (for fenced writes).</summary>
        public KahunaLock Permit => _permit;

        /// <summary>Gives the lease back (nothing to do when it was not granted or was given back already).</summary>
        public Task Release(CancellationToken cancellationToken = default)
        {
            return _permit.Release(cancellationToken);
        }

        /// <summary>Gives the lease back.</summary>
        public ValueTask DisposeAsync()
        {
            return _permit.DisposeAsync();
        }
    }
}
