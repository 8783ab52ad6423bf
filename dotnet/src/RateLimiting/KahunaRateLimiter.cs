// Rate limiters shared by every process that uses the same Kahuna cluster, built on
// compare-and-set by revision (the server has no rate-limiting primitive yet). Each limiter
// partition is one persistent key holding the limiter's state as text; a decision reads it,
// computes the new state and writes it back only if nobody changed it meanwhile (a failed
// compare returns the current state, so a retry costs one round trip). Because every grant
// is one successful compare-and-set, the limit holds exactly however many callers race.
using System;
using System.Globalization;
using System.Threading;
using System.Threading.Tasks;

namespace Kahuna.Client.RateLimiting
{
    /// <summary>The answer of a rate limiter.</summary>
    public sealed class KahunaRateLimitResult
    {
        internal KahunaRateLimitResult(bool isAllowed, long remaining, TimeSpan retryAfter)
        {
            IsAllowed = isAllowed;
            Remaining = remaining;
            RetryAfter = retryAfter;
        }

        /// <summary>Whether the permits were granted.</summary>
        public bool IsAllowed { get; }

        /// <summary>Permits still available after this decision (in the current window, or tokens left).</summary>
        public long Remaining { get; }

        /// <summary>When refused: how long until the requested permits could be available (zero when allowed).</summary>
        public TimeSpan RetryAfter { get; }
    }

    /// <summary>
    /// A limiter whose state lives in Kahuna, so every process using the same cluster shares it.
    /// Time is the caller's clock (<see cref="Clock"/>): processes sharing a limiter should have
    /// synchronised clocks; skew only shifts window edges, it never lets more permits through
    /// within one window.
    /// </summary>
    public abstract class KahunaRateLimiter
    {
        /// <summary>Creates a limiter named <paramref name="name"/> (its keys start with <c>ratelimit/{name}/</c>).</summary>
        protected KahunaRateLimiter(KahunaClient client, string name)
        {
            if (client == null) throw new ArgumentNullException(nameof(client));
            if (string.IsNullOrEmpty(name)) throw new ArgumentException("must not be empty", nameof(name));
            Client = client;
            Name = name;
        }

        /// <summary>The client the limiter's state is read and written through.</summary>
        protected KahunaClient Client { get; }

        /// <summary>The limiter's name.</summary>
        public string Name { get; }

        /// <summary>The clock decisions are made with (default: <see cref="DateTimeOffset.UtcNow"/>).</summary>
        public Func<DateTimeOffset> Clock { get; set; } = () => DateTimeOffset.UtcNow;

        /// <summary>The key holding the state of one partition.</summary>
        protected string KeyOf(string partitionKey)
        {
            return "ratelimit/" + Name + "/" + (partitionKey ?? "");
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
    /// At most <c>permitLimit</c> permits per partition in each window of <c>window</c>; a window
    /// starts with the first permit taken after the previous one ended (state: start and count).
    /// </summary>
    public sealed class KahunaFixedWindowRateLimiter : KahunaRateLimiter
    {
        private readonly long _limit;
        private readonly long _windowMs;

        /// <summary>A limiter of <paramref name="permitLimit"/> permits per <paramref name="window"/>.</summary>
        public KahunaFixedWindowRateLimiter(KahunaClient client, string name, long permitLimit, TimeSpan window)
            : base(client, name)
        {
            if (permitLimit < 1) throw new ArgumentOutOfRangeException(nameof(permitLimit));
            if (window < TimeSpan.FromMilliseconds(1)) throw new ArgumentOutOfRangeException(nameof(window));
            _limit = permitLimit;
            _windowMs = (long)Math.Ceiling(window.TotalMilliseconds);
        }

        /// <summary>Takes <paramref name="permits"/> permits of <paramref name="partitionKey"/> in the current window, if there are that many left.</summary>
        public Task<KahunaRateLimitResult> TryAcquire(string partitionKey = "", int permits = 1,
            CancellationToken cancellationToken = default)
        {
            CheckPermits(permits, _limit);
            return Update(KeyOf(partitionKey), delegate(string state, long now)
            {
                long start = now, used = 0;
                if (state != null)
                {
                    var parts = state.Split(':');
                    start = ParseLong(parts[0]);
                    used = ParseLong(parts[1]);
                    if (now >= start + _windowMs || now < start - _windowMs)
                    {
                        start = now;
                        used = 0;
                    }
                }
                long end = start + _windowMs;
                if (used + permits > _limit)
                    return Decision<KahunaRateLimitResult>.Answer(new KahunaRateLimitResult(false, _limit - used,
                        TimeSpan.FromMilliseconds(Math.Max(0, end - now))));
                used += permits;
                return Decision<KahunaRateLimitResult>.Write(Text(start) + ":" + Text(used),
                    TimeSpan.FromMilliseconds(end - now + _windowMs),
                    new KahunaRateLimitResult(true, _limit - used, TimeSpan.Zero));
            }, cancellationToken);
        }
    }

    /// <summary>
    /// At most <c>permitLimit</c> permits per partition in any interval of <c>window</c> (a sliding
    /// log: the state lists the time of each permit still inside the window, so keep the limit
    /// modest, up to a few thousand).
    /// </summary>
    public sealed class KahunaSlidingWindowRateLimiter : KahunaRateLimiter
    {
        private readonly long _limit;
        private readonly long _windowMs;

        /// <summary>A limiter of <paramref name="permitLimit"/> permits in any <paramref name="window"/>.</summary>
        public KahunaSlidingWindowRateLimiter(KahunaClient client, string name, long permitLimit, TimeSpan window)
            : base(client, name)
        {
            if (permitLimit < 1) throw new ArgumentOutOfRangeException(nameof(permitLimit));
            if (window < TimeSpan.FromMilliseconds(1)) throw new ArgumentOutOfRangeException(nameof(window));
            _limit = permitLimit;
            _windowMs = (long)Math.Ceiling(window.TotalMilliseconds);
        }

        /// <summary>Takes <paramref name="permits"/> permits of <paramref name="partitionKey"/>, if fewer than the
        /// limit were taken in the last window.</summary>
        public Task<KahunaRateLimitResult> TryAcquire(string partitionKey = "", int permits = 1,
            CancellationToken cancellationToken = default)
        {
            CheckPermits(permits, _limit);
            return Update(KeyOf(partitionKey), delegate(string state, long now)
            {
                var live = new System.Collections.Generic.List<long>();
                if (!string.IsNullOrEmpty(state))
                {
                    foreach (var part in state.Split(','))
                    {
                        long t = ParseLong(part);
                        if (t > now - _windowMs && t <= now + _windowMs) live.Add(t);
                    }
                }
                live.Sort();
                if (live.Count + permits > _limit)
                {
                    // The permits free up when the oldest ones that must go leave the window.
                    long freeAt = live[(int)(live.Count + permits - _limit - 1)] + _windowMs;
                    return Decision<KahunaRateLimitResult>.Answer(new KahunaRateLimitResult(false, _limit - live.Count,
                        TimeSpan.FromMilliseconds(Math.Max(0, freeAt - now))));
                }
                for (int i = 0; i < permits; i++) live.Add(now);
                var text = new System.Text.StringBuilder();
                foreach (var t in live)
                {
                    if (text.Length > 0) text.Append(',');
                    text.Append(Text(t));
                }
                return Decision<KahunaRateLimitResult>.Write(text.ToString(), TimeSpan.FromMilliseconds(2 * _windowMs),
                    new KahunaRateLimitResult(true, _limit - live.Count, TimeSpan.Zero));
            }, cancellationToken);
        }
    }

    /// <summary>
    /// A token bucket per partition: it holds at most <c>capacity</c> tokens, gains
    /// <c>tokensPerPeriod</c> every <c>replenishmentPeriod</c> (continuously), and each permit
    /// takes a token. Starts full.
    /// </summary>
    public sealed class KahunaTokenBucketRateLimiter : KahunaRateLimiter
    {
        private readonly long _capacity;
        private readonly double _tokensPerMs;

        /// <summary>A bucket of <paramref name="capacity"/> tokens refilled by <paramref name="tokensPerPeriod"/>
        /// every <paramref name="replenishmentPeriod"/>.</summary>
        public KahunaTokenBucketRateLimiter(KahunaClient client, string name, long capacity, long tokensPerPeriod,
            TimeSpan replenishmentPeriod) : base(client, name)
        {
            if (capacity < 1) throw new ArgumentOutOfRangeException(nameof(capacity));
            if (tokensPerPeriod < 1) throw new ArgumentOutOfRangeException(nameof(tokensPerPeriod));
            if (replenishmentPeriod < TimeSpan.FromMilliseconds(1)) throw new ArgumentOutOfRangeException(nameof(replenishmentPeriod));
            _capacity = capacity;
            _tokensPerMs = tokensPerPeriod / replenishmentPeriod.TotalMilliseconds;
        }

        /// <summary>Takes <paramref name="permits"/> tokens from the bucket of <paramref name="partitionKey"/>, if it has them.</summary>
        public Task<KahunaRateLimitResult> TryAcquire(string partitionKey = "", int permits = 1,
            CancellationToken cancellationToken = default)
        {
            CheckPermits(permits, _capacity);
            return Update(KeyOf(partitionKey), delegate(string state, long now)
            {
                double tokens = _capacity;
                if (state != null)
                {
                    var parts = state.Split(':');
                    double stored = double.Parse(parts[0], NumberStyles.Float, CultureInfo.InvariantCulture);
                    long last = ParseLong(parts[1]);
                    tokens = Math.Min(_capacity, stored + Math.Max(0, now - last) * _tokensPerMs);
                }
                if (tokens < permits)
                {
                    double waitMs = (permits - tokens) / _tokensPerMs;
                    return Decision<KahunaRateLimitResult>.Answer(new KahunaRateLimitResult(false, (long)Math.Floor(tokens),
                        TimeSpan.FromMilliseconds(Math.Ceiling(waitMs))));
                }
                tokens -= permits;
                // The key may expire once the bucket would be full again anyway.
                double fullInMs = (_capacity - tokens) / _tokensPerMs;
                return Decision<KahunaRateLimitResult>.Write(
                    tokens.ToString("R", CultureInfo.InvariantCulture) + ":" + Text(now),
                    TimeSpan.FromMilliseconds(Math.Min(Math.Ceiling(fullInMs) + 1000, TimeSpan.FromDays(365).TotalMilliseconds)),
                    new KahunaRateLimitResult(true, (long)Math.Floor(tokens), TimeSpan.Zero));
            }, cancellationToken);
        }
    }

    /// <summary>
    /// At most <c>permitLimit</c> leases of a partition held at once. A lease is given back by
    /// disposing it; one never given back (a crashed process) lapses after <c>leaseDuration</c>.
    /// </summary>
    public sealed class KahunaConcurrencyLimiter : KahunaRateLimiter
    {
        private readonly long _limit;
        private readonly long _leaseMs;

        /// <summary>A limiter of <paramref name="permitLimit"/> concurrent leases, each lapsing after
        /// <paramref name="leaseDuration"/> unless given back before.</summary>
        public KahunaConcurrencyLimiter(KahunaClient client, string name, long permitLimit, TimeSpan leaseDuration)
            : base(client, name)
        {
            if (permitLimit < 1) throw new ArgumentOutOfRangeException(nameof(permitLimit));
            if (leaseDuration < TimeSpan.FromMilliseconds(1)) throw new ArgumentOutOfRangeException(nameof(leaseDuration));
            _limit = permitLimit;
            _leaseMs = (long)Math.Ceiling(leaseDuration.TotalMilliseconds);
        }

        /// <summary>Takes a lease of <paramref name="partitionKey"/> if fewer than the limit are held.
        /// Check <see cref="KahunaConcurrencyLease.IsAcquired"/>; dispose the lease to give it back.</summary>
        public async Task<KahunaConcurrencyLease> TryAcquire(string partitionKey = "", CancellationToken cancellationToken = default)
        {
            string key = KeyOf(partitionKey);
            string id = Guid.NewGuid().ToString("N");
            var result = await Update(key, delegate(string state, long now)
            {
                var live = Leases(state, now, null);
                if (live.Count >= _limit)
                {
                    long firstLapse = long.MaxValue;
                    foreach (var l in live) firstLapse = Math.Min(firstLapse, l.Value);
                    return Decision<KahunaRateLimitResult>.Answer(new KahunaRateLimitResult(false, 0,
                        TimeSpan.FromMilliseconds(Math.Max(0, firstLapse - now))));
                }
                live.Add(new System.Collections.Generic.KeyValuePair<string, long>(id, now + _leaseMs));
                return Decision<KahunaRateLimitResult>.Write(Format(live), TimeSpan.FromMilliseconds(2 * _leaseMs),
                    new KahunaRateLimitResult(true, _limit - live.Count, TimeSpan.Zero));
            }, cancellationToken).ConfigureAwait(false);
            return new KahunaConcurrencyLease(this, key, result.IsAllowed ? id : null, result);
        }

        internal Task Release(string key, string id, CancellationToken cancellationToken)
        {
            return Update(key, delegate(string state, long now)
            {
                var live = Leases(state, now, id);
                bool had = state != null && state.Contains(id);
                if (!had) return Decision<bool>.Answer(false);
                return Decision<bool>.Write(Format(live), TimeSpan.FromMilliseconds(2 * _leaseMs), true);
            }, cancellationToken);
        }

        private static System.Collections.Generic.List<System.Collections.Generic.KeyValuePair<string, long>> Leases(
            string state, long now, string without)
        {
            var live = new System.Collections.Generic.List<System.Collections.Generic.KeyValuePair<string, long>>();
            if (string.IsNullOrEmpty(state)) return live;
            foreach (var part in state.Split(','))
            {
                var kv = part.Split(':');
                long until = ParseLong(kv[1]);
                if (until > now && kv[0] != without)
                    live.Add(new System.Collections.Generic.KeyValuePair<string, long>(kv[0], until));
            }
            return live;
        }

        private static string Format(System.Collections.Generic.List<System.Collections.Generic.KeyValuePair<string, long>> live)
        {
            var text = new System.Text.StringBuilder();
            foreach (var l in live)
            {
                if (text.Length > 0) text.Append(',');
                text.Append(l.Key).Append(':').Append(Text(l.Value));
            }
            return text.ToString();
        }
    }

    /// <summary>A lease of a <see cref="KahunaConcurrencyLimiter"/>; dispose it to give it back.</summary>
    public sealed class KahunaConcurrencyLease : IAsyncDisposable
    {
        private readonly KahunaConcurrencyLimiter _limiter;
        private readonly string _key;
        private readonly string _id;
        private int _released;

        internal KahunaConcurrencyLease(KahunaConcurrencyLimiter limiter, string key, string id, KahunaRateLimitResult result)
        {
            _limiter = limiter;
            _key = key;
            _id = id;
            Result = result;
        }

        /// <summary>Whether the lease was granted.</summary>
        public bool IsAcquired => _id != null;

        /// <summary>The limiter's answer (remaining leases, or when the first held one lapses).</summary>
        public KahunaRateLimitResult Result { get; }

        /// <summary>Gives the lease back (nothing to do when it was not granted or was given back already).</summary>
        public Task Release(CancellationToken cancellationToken = default)
        {
            if (_id == null || Interlocked.Exchange(ref _released, 1) != 0) return Task.CompletedTask;
            return _limiter.Release(_key, _id, cancellationToken);
        }

        /// <summary>Gives the lease back.</summary>
        public ValueTask DisposeAsync()
        {
            return new ValueTask(Release());
        }
    }
}
