// NUnit 2.6 tests of Kahuna.Client.RateLimiting against the 3-node cluster: 16 concurrent
// callers, and the limit holds exactly. Every limiter is the server's (cluster time): the rate
// limiters its rate checks, the concurrency limiter its semaphores.
using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using NUnit.Framework;
using Kahuna.Client;
using Kahuna.Client.RateLimiting;

namespace Kahuna.Client.Tests
{
    [TestFixture]
    public class RateLimitingTests
    {
        private const int Callers = 16;
        private KahunaClient _client;

        [TestFixtureSetUp]
        public void SetUp()
        {
            _client = Cluster.Client();
        }

        [TestFixtureTearDown]
        public void TearDown()
        {
            _client.Dispose();
        }

        /// <summary>Starts <see cref="Callers"/> callers at once, each trying <paramref name="attempts"/>
        /// times; returns how many attempts were allowed.</summary>
        private static async Task<int> Race(int attempts, Func<Task<bool>> attempt)
        {
            var go = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
            var callers = Enumerable.Range(0, Callers).Select(i => Task.Run(async () =>
            {
                await go.Task;
                int allowed = 0;
                for (int a = 0; a < attempts; a++)
                    if (await attempt()) allowed++;
                return allowed;
            })).ToArray();
            go.SetResult(true);
            return (await Task.WhenAll(callers)).Sum();
        }

        private static void AssertInvalid(Func<Task> call, string what)
        {
            var e = Assert.Throws<KahunaException>(() => call().GetAwaiter().GetResult(), what);
            Assert.AreEqual(KahunaErrorCode.InvalidArgument, e.Code, what + ": " + e.Message);
        }

        [Test]
        public async Task FixedWindowGrantsExactlyTheLimitPerWindow()
        {
            // Windows are aligned to the cluster's clock; an hour-long one is not crossed during the test.
            string name = Cluster.Unique("fixed");
            var limiter = new KahunaFixedWindowRateLimiter(_client, name, 10, TimeSpan.FromHours(1));
            var second = Cluster.Client();
            try
            {
                var other = new KahunaFixedWindowRateLimiter(second, name, 10, TimeSpan.FromHours(1));
                int allowed = await Race(3, async () => (await (Interlocked.Increment(ref _flip) % 2 == 0 ? limiter.TryAcquire("api")
                    : other.TryAcquire("api"))).IsAllowed);
                Assert.AreEqual(10, allowed, "16 callers on two clients, 3 tries each: exactly the limit");
            }
            finally
            {
                second.Dispose();
            }
            var refused = await limiter.TryAcquire("api");
            Assert.IsFalse(refused.IsAllowed);
            Assert.AreEqual(0, refused.Remaining);
            Assert.That(refused.RetryAfter, Is.GreaterThan(TimeSpan.Zero).And.LessThanOrEqualTo(TimeSpan.FromHours(1)));
            Assert.IsTrue((await limiter.TryAcquire("other")).IsAllowed, "partitions are independent");

            var big = await limiter.TryAcquire("big", 7);
            Assert.IsTrue(big.IsAllowed);
            Assert.AreEqual(3, big.Remaining);
            Assert.Greater(big.Revision, 0, "a persistent decision has a revision");
            Assert.IsFalse((await limiter.TryAcquire("big", 4)).IsAllowed);
            var last = await limiter.TryAcquire("big", 3);
            Assert.IsTrue(last.IsAllowed);
            Assert.AreEqual(0, last.Remaining);
            Assert.Throws<ArgumentOutOfRangeException>(() => limiter.TryAcquire("api", 11).GetAwaiter().GetResult());
        }

        private int _flip;

        [Test]
        public async Task FixedWindowOpensAgainAfterRetryAfter()
        {
            var limiter = new KahunaFixedWindowRateLimiter(_client, Cluster.Unique("fixed-real"), 5, TimeSpan.FromSeconds(2));
            KahunaRateLimitResult r;
            int allowed = 0;
            while ((r = await limiter.TryAcquire()).IsAllowed) allowed++;
            Assert.That(allowed, Is.InRange(1, 10), "at most two windows' worth before a refusal");
            Assert.That(r.RetryAfter, Is.GreaterThan(TimeSpan.Zero).And.LessThanOrEqualTo(TimeSpan.FromSeconds(2)));
            await Task.Delay(r.RetryAfter + TimeSpan.FromMilliseconds(50));
            Assert.IsTrue((await limiter.TryAcquire()).IsAllowed, "the next window");
        }

        [Test]
        public async Task SlidingWindowGrantsExactlyTheLimitInAnyWindow()
        {
            var limiter = new KahunaSlidingWindowRateLimiter(_client, Cluster.Unique("sliding"), 8, TimeSpan.FromMinutes(10));
            Assert.AreEqual(8, await Race(3, async () => (await limiter.TryAcquire("q")).IsAllowed));
            var refused = await limiter.TryAcquire("q");
            Assert.IsFalse(refused.IsAllowed);
            Assert.AreEqual(0, refused.Remaining);
            Assert.That(refused.RetryAfter, Is.GreaterThan(TimeSpan.Zero).And.LessThanOrEqualTo(TimeSpan.FromMinutes(10)));

            var other = await limiter.TryAcquire("r", 5);
            Assert.IsTrue(other.IsAllowed);
            Assert.AreEqual(3, other.Remaining);
            Assert.IsFalse((await limiter.TryAcquire("r", 4)).IsAllowed);
        }

        [Test]
        public async Task TokenBucketGrantsItsTokensThenRefills()
        {
            var limiter = new KahunaTokenBucketRateLimiter(_client, Cluster.Unique("bucket"), 10, 1, TimeSpan.FromSeconds(1));
            Assert.AreEqual(1, limiter.RefillPerSecond);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            int allowed = await Race(3, async () => (await limiter.TryAcquire("b")).IsAllowed);
            // A full bucket, plus whatever refilled (1 a second) while the callers raced.
            Assert.That(allowed, Is.InRange(10, 10 + (int)Math.Ceiling(clock.Elapsed.TotalSeconds)));
            KahunaRateLimitResult refused;
            while ((refused = await limiter.TryAcquire("b")).IsAllowed) { }
            Assert.AreEqual(0, refused.Remaining);
            Assert.That(refused.RetryAfter, Is.GreaterThan(TimeSpan.Zero).And.LessThanOrEqualTo(TimeSpan.FromSeconds(1)));
            await Task.Delay(refused.RetryAfter + TimeSpan.FromMilliseconds(50));
            Assert.IsTrue((await limiter.TryAcquire("b")).IsAllowed, "a token refilled");
            Assert.Throws<ArgumentOutOfRangeException>(() => limiter.TryAcquire("b", 11).GetAwaiter().GetResult());

            // Never above capacity: 3 tokens at 50 a second, after a second's rest.
            var small = new KahunaTokenBucketRateLimiter(_client, Cluster.Unique("bucket-small"), 3, 50, TimeSpan.FromSeconds(1));
            Assert.IsTrue((await small.TryAcquire("s", 3)).IsAllowed);
            await Task.Delay(1000);
            var full = await small.TryAcquire("s");
            Assert.IsTrue(full.IsAllowed);
            Assert.That(full.Remaining, Is.LessThanOrEqualTo(2), "the bucket holds at most its capacity");
        }

        [Test]
        public void TokenBucketRefillMustBeWholeTokensPerSecond()
        {
            Assert.AreEqual(20, new KahunaTokenBucketRateLimiter(_client, "b", 10, 10, TimeSpan.FromMilliseconds(500)).RefillPerSecond);
            Assert.AreEqual(1, new KahunaTokenBucketRateLimiter(_client, "b", 10, 60, TimeSpan.FromMinutes(1)).RefillPerSecond);
            var e = Assert.Throws<ArgumentOutOfRangeException>(
                () => new KahunaTokenBucketRateLimiter(_client, "b", 10, 1, TimeSpan.FromSeconds(3)));
            StringAssert.Contains("whole number of tokens per second", e.Message);
            StringAssert.Contains("0.333333 per second", e.Message);
            Assert.Throws<ArgumentOutOfRangeException>(() => new KahunaTokenBucketRateLimiter(_client, "b", 10, 3, TimeSpan.FromSeconds(2)));
            Assert.Throws<ArgumentOutOfRangeException>(() => new KahunaTokenBucketRateLimiter(_client, "b", 10, 1, TimeSpan.Zero));
        }

        [Test]
        public async Task EphemeralLimitersAreTheirOwnTier()
        {
            string name = Cluster.Unique("ephemeral");
            var fast = new KahunaFixedWindowRateLimiter(_client, name, 5, TimeSpan.FromHours(1), RateLimitDurability.Ephemeral);
            Assert.AreEqual(RateLimitDurability.Ephemeral, fast.Durability);
            Assert.AreEqual(5, await Race(2, async () => (await fast.TryAcquire("e")).IsAllowed), "the limit holds in the leader's memory");
            var refused = await fast.TryAcquire("e");
            Assert.IsFalse(refused.IsAllowed);
            Assert.That(refused.RetryAfter, Is.GreaterThan(TimeSpan.Zero));

            var persistent = new KahunaFixedWindowRateLimiter(_client, name, 5, TimeSpan.FromHours(1));
            Assert.IsTrue((await persistent.TryAcquire("e")).IsAllowed, "the same name on the persistent tier is another limiter");

            var bucket = new KahunaTokenBucketRateLimiter(_client, name, 4, 1, TimeSpan.FromSeconds(1), RateLimitDurability.Ephemeral);
            var d = await _client.CheckRateLimit(name + "/direct", KahunaRatePolicy.SlidingWindow(3, TimeSpan.FromMinutes(5)), 3,
                RateLimitDurability.Ephemeral);
            Assert.IsTrue(d.IsAllowed);
            Assert.AreEqual(0, d.Remaining);
            Assert.IsFalse((await _client.CheckRateLimit(name + "/direct", KahunaRatePolicy.SlidingWindow(3, TimeSpan.FromMinutes(5)),
                1, RateLimitDurability.Ephemeral)).IsAllowed);
            Assert.IsTrue((await bucket.TryAcquire("x", 4)).IsAllowed);
        }

        [Test]
        public async Task CheckRateLimitDecidesInOneCall()
        {
            string name = Cluster.Unique("direct");
            var policy = KahunaRatePolicy.FixedWindow(3, TimeSpan.FromHours(1));
            Assert.AreEqual(3, policy.Limit);
            Assert.AreEqual(TimeSpan.FromHours(1), policy.Window);
            var first = await _client.CheckRateLimit(name, policy, 2);
            Assert.IsTrue(first.IsAllowed);
            Assert.AreEqual(1, first.Remaining);
            Assert.AreEqual(TimeSpan.Zero, first.RetryAfter);
            var second = await _client.CheckRateLimit(name, policy, 2);
            Assert.IsFalse(second.IsAllowed);
            Assert.AreEqual(1, second.Remaining);
            Assert.That(second.RetryAfter, Is.GreaterThan(TimeSpan.Zero));
            Assert.IsTrue((await _client.CheckRateLimit(name, policy)).IsAllowed, "cost 1 fits");
        }

        [Test]
        public void BadRateLimitInputIsATypedError()
        {
            string name = Cluster.Unique("bad");
            AssertInvalid(() => _client.CheckRateLimit(name, KahunaRatePolicy.FixedWindow(10, TimeSpan.Zero)), "a zero window");
            AssertInvalid(() => _client.CheckRateLimit(name, KahunaRatePolicy.SlidingWindow(10, TimeSpan.Zero)), "a zero sliding window");
            AssertInvalid(() => _client.CheckRateLimit(name, KahunaRatePolicy.FixedWindow(0, TimeSpan.FromSeconds(1))), "a zero limit");
            AssertInvalid(() => _client.CheckRateLimit(name, KahunaRatePolicy.TokenBucket(10, 0)), "no refill");
            AssertInvalid(() => _client.CheckRateLimit(new string('n', 1025), KahunaRatePolicy.TokenBucket(10, 1)), "a name too long");
            AssertInvalid(() => _client.CheckRateLimit("", KahunaRatePolicy.TokenBucket(10, 1)), "an empty name");
            AssertInvalid(() => _client.CheckRateLimit(name, KahunaRatePolicy.TokenBucket(10, 1), 11), "a cost above the capacity");
            AssertInvalid(() => _client.CheckRateLimit(new string('n', 1025), KahunaRatePolicy.TokenBucket(10, 1), 1,
                RateLimitDurability.Ephemeral), "a name too long, ephemeral");
            Assert.Throws<ArgumentOutOfRangeException>(() => KahunaRatePolicy.FixedWindow(10, TimeSpan.FromTicks(15000)));
            Assert.Throws<ArgumentOutOfRangeException>(() => KahunaRatePolicy.TokenBucket(-1, 1));
            Assert.Throws<ArgumentOutOfRangeException>(
                () => new KahunaFixedWindowRateLimiter(_client, name, 10, TimeSpan.Zero));
            var tooLong = new KahunaSlidingWindowRateLimiter(_client, new string('n', 1100), 10, TimeSpan.FromSeconds(1));
            AssertInvalid(() => tooLong.TryAcquire("p"), "a limiter name too long");
        }

        [Test]
        public async Task ConcurrencyLimiterNeverHasMoreLeasesThanTheLimit()
        {
            var limiter = new KahunaConcurrencyLimiter(_client, Cluster.Unique("concurrency"), 4, TimeSpan.FromMinutes(1));

            // 16 callers at once, nobody gives back: exactly 4 leases.
            var leases = new System.Collections.Concurrent.ConcurrentBag<KahunaConcurrencyLease>();
            int granted = await Race(1, async () =>
            {
                var l = await limiter.TryAcquire("db");
                leases.Add(l);
                return l.IsAcquired;
            });
            Assert.AreEqual(4, granted);
            foreach (var l in leases) await l.DisposeAsync();

            // 16 callers, each 3 times: wait for a lease, work, give it back. Never more than 4 at once.
            int inside = 0, most = 0, done = 0;
            await Race(3, async () =>
            {
                KahunaConcurrencyLease l;
                while (!(l = await limiter.TryAcquire("db")).IsAcquired) await Task.Delay(20);
                try
                {
                    int n = Interlocked.Increment(ref inside);
                    int m;
                    while ((m = Volatile.Read(ref most)) < n) Interlocked.CompareExchange(ref most, n, m);
                    await Task.Delay(100);
                    Interlocked.Increment(ref done);
                }
                finally
                {
                    Interlocked.Decrement(ref inside);
                    await l.DisposeAsync();
                }
                return true;
            });
            Assert.AreEqual(Callers * 3, done);
            Assert.LessOrEqual(most, 4);
            Assert.Greater(most, 1, "the limiter let callers work concurrently");

            // Everything was given back: 4 leases are available again, not a fifth.
            var again = new List<KahunaConcurrencyLease>();
            for (int i = 0; i < 5; i++) again.Add(await limiter.TryAcquire("db"));
            Assert.AreEqual(4, again.Count(l => l.IsAcquired));
            foreach (var l in again) await l.DisposeAsync();
        }

        [Test]
        public async Task ALeaseIsRenewedWhileHeldAndACrashedHoldersLeaseLapses()
        {
            string name = Cluster.Unique("lapse");
            var limiter = new KahunaConcurrencyLimiter(_client, name, 2, TimeSpan.FromSeconds(3));
            var mine = await limiter.TryAcquire();
            Assert.IsTrue(mine.IsAcquired);
            Assert.AreEqual(1, mine.Result.Remaining);
            Assert.Greater(mine.FencingToken, 0);
            // The other lease, held by `kahuna lock run --permits 2` in another process: the
            // partition's semaphore is the limiter's.
            var psi = new System.Diagnostics.ProcessStartInfo(
                System.IO.Path.Combine(Environment.GetEnvironmentVariable("KAHUNA_BIN"), "kahuna"),
                "--endpoints " + string.Join(",", Cluster.Endpoints) + " lock run ratelimit/" + name +
                "/ --permits 2 --ttl 3s -- sleep 100");
            psi.UseShellExecute = false;
            var cli = System.Diagnostics.Process.Start(psi);
            try
            {
                var until = DateTime.UtcNow.AddSeconds(20);
                while (true)
                {
                    var info = await _client.GetLockInfo("ratelimit/" + name + "/");
                    if (info != null && info.Holders == 2) break;
                    Assert.Less(DateTime.UtcNow, until, "the CLI never took its lease");
                    await Task.Delay(50);
                }
                // Held past its 3 s lease duration: renewed, so the limit still holds.
                await Task.Delay(4500);
                Assert.IsTrue(mine.IsAcquired, "the lease was renewed while held");
                var refused = await limiter.TryAcquire();
                Assert.IsFalse(refused.IsAcquired);
                Assert.AreEqual(0, refused.Result.Remaining);
                Assert.AreEqual(TimeSpan.Zero, refused.Result.RetryAfter);

                // The other holder crashes: its lease lapses and a waiter gets it.
                cli.Kill();
                cli.WaitForExit();
                var sw = System.Diagnostics.Stopwatch.StartNew();
                var waited = await limiter.Acquire("", TimeSpan.FromSeconds(30));
                Assert.IsTrue(waited.IsAcquired);
                Assert.Less(sw.Elapsed, TimeSpan.FromSeconds(8), "a crashed holder's lease lapses after its duration");
                Assert.Greater(waited.FencingToken, mine.FencingToken);
                Assert.IsTrue(mine.IsAcquired, "the live holder kept its lease");
                await waited.DisposeAsync();
                Assert.IsTrue(waited.Lost.IsCancellationRequested, "disposing gives the lease back");
            }
            finally
            {
                if (!cli.HasExited) cli.Kill();
                await mine.DisposeAsync();
            }
        }

        [Test]
        public async Task AConcurrencyLimiterIsASemaphore()
        {
            string name = Cluster.Unique("sem-limiter");
            var limiter = new KahunaConcurrencyLimiter(_client, name, 3, TimeSpan.FromSeconds(10));
            var lease = await limiter.TryAcquire("p");
            try
            {
                var info = await _client.GetLockInfo("ratelimit/" + name + "/p");
                Assert.AreEqual(3, info.Permits);
                Assert.AreEqual(1, info.Holders);
                // A lease fences writes with its own token.
                await _client.SetKeyValueFenced(Cluster.Unique("sem-limiter-out"), "v", lease.Permit);
                // Another limit for the same name is refused while the lease is held.
                var other = new KahunaConcurrencyLimiter(_client, name, 4, TimeSpan.FromSeconds(10));
                var e = Assert.Throws<KahunaException>(() => other.TryAcquire("p").GetAwaiter().GetResult());
                Assert.AreEqual(KahunaErrorCode.InvalidArgument, e.Code);
            }
            finally
            {
                await lease.DisposeAsync();
            }
            Assert.IsNull(await _client.GetLockInfo("ratelimit/" + name + "/p"));
            Assert.Throws<ArgumentOutOfRangeException>(() =>
                new KahunaConcurrencyLimiter(_client, name, KahunaClient.MaxPermits + 1, TimeSpan.FromSeconds(1)));
            Assert.Throws<ArgumentOutOfRangeException>(() => new KahunaConcurrencyLimiter(_client, name, 0, TimeSpan.FromSeconds(1)));
        }
    }
}
