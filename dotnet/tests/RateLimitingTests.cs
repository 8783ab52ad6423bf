// NUnit 2.6 tests of Kahuna.Client.RateLimiting against the 3-node cluster: 16 concurrent
// callers, and the limit holds exactly. Time moves by a test clock where windows matter.
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

        [Test]
        public async Task FixedWindowGrantsExactlyTheLimitPerWindow()
        {
            var now = DateTimeOffset.UtcNow;
            var limiter = new KahunaFixedWindowRateLimiter(_client, Cluster.Unique("fixed"), 10, TimeSpan.FromMinutes(1));
            limiter.Clock = () => now;
            Assert.AreEqual(10, await Race(3, async () => (await limiter.TryAcquire("api")).IsAllowed));
            var refused = await limiter.TryAcquire("api");
            Assert.IsFalse(refused.IsAllowed);
            Assert.AreEqual(0, refused.Remaining);
            Assert.That(refused.RetryAfter, Is.InRange(TimeSpan.FromSeconds(59), TimeSpan.FromSeconds(60)));
            Assert.IsTrue((await limiter.TryAcquire("other")).IsAllowed, "partitions are independent");

            now = now.AddSeconds(30);
            Assert.AreEqual(0, await Race(1, async () => (await limiter.TryAcquire("api")).IsAllowed), "same window");
            now = now.AddSeconds(31);
            Assert.AreEqual(10, await Race(2, async () => (await limiter.TryAcquire("api")).IsAllowed), "next window");

            now = now.AddMinutes(2);
            var big = await limiter.TryAcquire("api", 7);
            Assert.IsTrue(big.IsAllowed);
            Assert.AreEqual(3, big.Remaining);
            Assert.IsFalse((await limiter.TryAcquire("api", 4)).IsAllowed);
            Assert.IsTrue((await limiter.TryAcquire("api", 3)).IsAllowed);
            Assert.Throws<ArgumentOutOfRangeException>(() => limiter.TryAcquire("api", 11).GetAwaiter().GetResult());
        }

        [Test]
        public async Task FixedWindowOnTheRealClock()
        {
            var limiter = new KahunaFixedWindowRateLimiter(_client, Cluster.Unique("fixed-real"), 5, TimeSpan.FromSeconds(2));
            Assert.AreEqual(5, await Race(2, async () => (await limiter.TryAcquire()).IsAllowed));
            await Task.Delay(2100);
            Assert.AreEqual(5, await Race(1, async () => (await limiter.TryAcquire()).IsAllowed));
        }

        [Test]
        public async Task SlidingWindowGrantsExactlyTheLimitInAnyWindow()
        {
            var now = DateTimeOffset.UtcNow;
            var limiter = new KahunaSlidingWindowRateLimiter(_client, Cluster.Unique("sliding"), 8, TimeSpan.FromSeconds(10));
            limiter.Clock = () => now;
            // 16 callers at t=0 asking for 1 each, 3 times: exactly 8.
            var t0 = now;
            int first = await Race(3, async () => (await limiter.TryAcquire("q")).IsAllowed);
            Assert.AreEqual(8, first);
            now = t0.AddSeconds(6);
            Assert.AreEqual(0, await Race(1, async () => (await limiter.TryAcquire("q")).IsAllowed), "still inside the window");
            var refused = await limiter.TryAcquire("q");
            Assert.That(refused.RetryAfter, Is.InRange(TimeSpan.FromSeconds(3.9), TimeSpan.FromSeconds(4.1)));
            now = t0.AddSeconds(10.001);
            Assert.AreEqual(8, await Race(2, async () => (await limiter.TryAcquire("q")).IsAllowed), "the first 8 left the window");
            now = t0.AddSeconds(15);
            Assert.AreEqual(0, await Race(1, async () => (await limiter.TryAcquire("q")).IsAllowed), "the last 8 are 5 s old");
        }

        [Test]
        public async Task TokenBucketGrantsExactlyItsTokens()
        {
            var now = DateTimeOffset.UtcNow;
            var limiter = new KahunaTokenBucketRateLimiter(_client, Cluster.Unique("bucket"), 10, 2, TimeSpan.FromSeconds(1));
            limiter.Clock = () => now;
            Assert.AreEqual(10, await Race(3, async () => (await limiter.TryAcquire("b")).IsAllowed), "a full bucket");
            var refused = await limiter.TryAcquire("b");
            Assert.IsFalse(refused.IsAllowed);
            Assert.That(refused.RetryAfter, Is.InRange(TimeSpan.FromMilliseconds(400), TimeSpan.FromMilliseconds(500)));
            now = now.AddSeconds(1);
            Assert.AreEqual(2, await Race(2, async () => (await limiter.TryAcquire("b")).IsAllowed), "one second refills 2");
            now = now.AddHours(1);
            Assert.AreEqual(10, await Race(2, async () => (await limiter.TryAcquire("b")).IsAllowed), "never above capacity");
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
        public async Task ALeaseNeverGivenBackLapses()
        {
            var now = DateTimeOffset.UtcNow;
            var limiter = new KahunaConcurrencyLimiter(_client, Cluster.Unique("lapse"), 2, TimeSpan.FromSeconds(30));
            limiter.Clock = () => now;
            Assert.IsTrue((await limiter.TryAcquire()).IsAcquired);
            Assert.IsTrue((await limiter.TryAcquire()).IsAcquired);
            var refused = await limiter.TryAcquire();
            Assert.IsFalse(refused.IsAcquired);
            Assert.That(refused.Result.RetryAfter, Is.InRange(TimeSpan.FromSeconds(29), TimeSpan.FromSeconds(30)));
            now = now.AddSeconds(31);
            Assert.AreEqual(2, await Race(1, async () => (await limiter.TryAcquire()).IsAcquired));
        }
    }
}
