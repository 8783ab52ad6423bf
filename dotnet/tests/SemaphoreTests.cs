// NUnit 2.6 tests of semaphores (KahunaClient.AcquirePermit) against the 3-node cluster, the
// scenarios of core-client/tests/semaphore.rs: at most N holders at once with waiters granted in
// arrival order, each permit's token fencing writes while held (and FENCED after release), the
// semaphore's info, and typed errors for a name asked two ways.
using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using NUnit.Framework;
using Kahuna.Client;

namespace Kahuna.Client.Tests
{
    [TestFixture]
    public class SemaphoreTests
    {
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

        private static readonly TimeSpan Ttl = TimeSpan.FromSeconds(10);

        /// <summary>Polls the semaphore's info until <paramref name="done"/> holds (10 s at most).</summary>
        private async Task<KahunaLockInfo> Until(string name, Func<KahunaLockInfo, bool> done, string what)
        {
            var until = DateTime.UtcNow.AddSeconds(10);
            while (true)
            {
                var info = await _client.GetLockInfo(name);
                if (info != null && done(info)) return info;
                if (DateTime.UtcNow > until) Assert.Fail(what);
                await Task.Delay(10);
            }
        }

        private static void AssertCode(KahunaErrorCode code, Func<Task> call, string what, string message = null)
        {
            var e = Assert.Throws<KahunaException>(() => call().GetAwaiter().GetResult(), what);
            Assert.AreEqual(code, e.Code, what + ": " + e.Message);
            if (message != null) StringAssert.Contains(message, e.Message, what);
        }

        [Test]
        public async Task AtMostNHoldAtOnceAndWaitersAreGrantedInArrivalOrder()
        {
            const int permits = 3, workers = 9;
            string name = Cluster.Unique("sem/pool");
            var first = new List<KahunaLock>();
            for (int i = 0; i < permits; i++)
            {
                var p = await _client.AcquirePermit(name, permits, Ttl);
                Assert.IsTrue(p.IsAcquired, "permit " + i);
                Assert.Greater(p.FencingToken, 0);
                Assert.IsNotNull(p.Holder, "an acquired permit shows the semaphore");
                Assert.AreEqual(permits, p.Holder.Permits);
                Assert.AreEqual(i + 1, p.Holder.Holders);
                first.Add(p);
            }
            var full = await _client.AcquirePermit(name, permits, Ttl);
            Assert.IsFalse(full.IsAcquired, "a fourth permit of three was granted");
            Assert.IsTrue(full.Lost.IsCancellationRequested);
            Assert.AreEqual(0, full.FencingToken);
            Assert.AreEqual(permits, full.Holder.Permits);
            Assert.AreEqual(permits, full.Holder.Holders);
            await full.DisposeAsync();

            int inside = permits, most = permits;
            var grants = new ConcurrentQueue<(int, long)>();
            var stale = new ConcurrentQueue<string>();
            var tasks = new List<Task>();
            for (int w = 0; w < workers; w++)
            {
                int i = w;
                tasks.Add(Task.Run(async () =>
                {
                    var p = await _client.AcquirePermit(name, permits, Ttl, TimeSpan.FromSeconds(90));
                    Assert.IsTrue(p.IsAcquired, "worker " + i + " gave up");
                    int n = Interlocked.Increment(ref inside);
                    int m;
                    while ((m = Volatile.Read(ref most)) < n) Interlocked.CompareExchange(ref most, n, m);
                    grants.Enqueue((i, p.FencingToken));
                    string key = name + "/out/" + i;
                    // A permit's token fences writes while it is held ...
                    await _client.SetKeyValueFenced(key, "held", p);
                    await Task.Delay(100);
                    Interlocked.Decrement(ref inside);
                    Assert.IsTrue(await p.Release(), "worker " + i + " released");
                    Assert.IsTrue(p.Lost.IsCancellationRequested, "release fires the lost token");
                    Assert.IsFalse(p.IsAcquired);
                    await p.DisposeAsync();
                    // ... and no more once released.
                    try
                    {
                        await _client.SetKeyValueFenced(key, Encoding.UTF8.GetBytes("late"), name, p.FencingToken);
                        stale.Enqueue("worker " + i + ": a released permit's token still fenced");
                    }
                    catch (KahunaException e) when (e.Code == KahunaErrorCode.Fenced)
                    {
                    }
                }));
                // The next asks only once this one has its place in the queue.
                int waiting = i + 1;
                await Until(name, info => info.Waiters >= waiting, "worker " + i + " never took its place");
            }
            var info3 = await _client.GetLockInfo(name);
            Assert.AreEqual(permits, info3.Permits);
            Assert.AreEqual(permits, info3.Holders);
            Assert.AreEqual(workers, info3.Waiters);
            Assert.IsEmpty(info3.Owner, "nobody's permit is shown to a non-holder");
            Assert.IsTrue(info3.IsSemaphore);

            foreach (var p in first)
            {
                Interlocked.Decrement(ref inside);
                await p.DisposeAsync();
                Assert.IsTrue(p.Lost.IsCancellationRequested, "DisposeAsync gives the permit back");
            }
            var all = Task.WhenAll(tasks);
            Assert.AreSame(all, await Task.WhenAny(all, Task.Delay(TimeSpan.FromSeconds(60))),
                "every waiter is granted within 60 s");
            await all;
            Assert.IsEmpty(stale, string.Join("; ", stale));
            Assert.LessOrEqual(most, permits, most + " held at once");
            var byToken = grants.OrderBy(g => g.Item2).ToList();
            CollectionAssert.AreEqual(Enumerable.Range(0, workers).ToList(), byToken.Select(g => g.Item1).ToList(),
                "granted in arrival order");
            var tokens = first.Select(p => p.FencingToken).Concat(grants.Select(g => g.Item2)).ToList();
            Assert.AreEqual(tokens.Count, tokens.Distinct().Count(), "two permits shared a token");
            Assert.IsNull(await _client.GetLockInfo(name), "the semaphore outlived its last holder");
        }

        [Test]
        public async Task APermitFencesWritesLikeALockInTransactions()
        {
            string name = Cluster.Unique("sem/fence"), key = Cluster.Unique("sem/fenced");
            var a = await _client.AcquirePermit(name, 2, Ttl);
            var b = await _client.AcquirePermit(name, 2, Ttl);
            try
            {
                Assert.IsTrue(a.IsAcquired && b.IsAcquired);
                Assert.AreNotEqual(a.FencingToken, b.FencingToken);
                Assert.AreEqual(name, a.Resource);
                Assert.AreEqual(LockDurability.Persistent, a.Durability);
                Assert.IsNotEmpty(a.Owner);
                var t = await _client.CreateTransaction().FencedBy(a).ThenSet(key, "by-a").Commit();
                Assert.IsTrue(t.Succeeded);
                await a.DisposeAsync();
                AssertCode(KahunaErrorCode.Fenced,
                    () => _client.CreateTransaction().FencedBy(name, a.FencingToken).ThenSet(key, "stale").Commit(),
                    "a released permit in a transaction");
                // The other permit still fences.
                await _client.SetKeyValueFenced(key, "by-b", b);
                Assert.AreEqual("by-b", (await _client.GetKeyValue(key)).ValueAsString());
            }
            finally
            {
                await a.DisposeAsync();
                await b.DisposeAsync();
            }
        }

        [Test]
        public async Task ANameAskedTwoWaysIsATypedError()
        {
            string name = Cluster.Unique("sem/kinds");
            var held = await _client.AcquirePermit(name, 3, Ttl);
            try
            {
                Assert.IsTrue(held.IsAcquired);
                AssertCode(KahunaErrorCode.InvalidArgument, () => _client.AcquirePermit(name, 5, Ttl),
                    "another number of permits", "semaphore of 3 permits");
                AssertCode(KahunaErrorCode.InvalidArgument, () => _client.GetOrCreateLock(name, Ttl),
                    "a semaphore asked as a lock", "semaphore of 3 permits");
                var e = Assert.Throws<KahunaException>(() => _client.AcquirePermit(name, 2, Ttl).GetAwaiter().GetResult());
                Assert.IsFalse(e.IsRetryable, "InvalidArgument is not retryable");

                string lockName = Cluster.Unique("sem/a-lock");
                var l = await _client.GetOrCreateLock(lockName, Ttl);
                try
                {
                    Assert.IsTrue(l.IsAcquired);
                    AssertCode(KahunaErrorCode.InvalidArgument, () => _client.AcquirePermit(lockName, 2, Ttl),
                        "a lock asked as a semaphore", "is a lock");
                }
                finally
                {
                    await l.DisposeAsync();
                }

                Assert.Throws<ArgumentOutOfRangeException>(() => _client.AcquirePermit(name, 0, Ttl));
                Assert.Throws<ArgumentOutOfRangeException>(() => _client.AcquirePermit(name, KahunaClient.MaxPermits + 1, Ttl));
                Assert.Throws<ArgumentNullException>(() => _client.AcquirePermit(null, 2, Ttl));

                // One permit is the lock of that name.
                string one = Cluster.Unique("sem/one");
                var p1 = await _client.AcquirePermit(one, 1, Ttl);
                try
                {
                    Assert.IsTrue(p1.IsAcquired);
                    Assert.AreEqual(0, p1.Holder.Permits);
                    var busy = await _client.GetOrCreateLock(one, Ttl);
                    Assert.IsFalse(busy.IsAcquired, "the lock of a 1-permit semaphore is held");
                    Assert.AreEqual(p1.FencingToken, busy.Holder.FencingToken);
                    await busy.DisposeAsync();
                }
                finally
                {
                    await p1.DisposeAsync();
                }
            }
            finally
            {
                await held.DisposeAsync();
            }
            // Nobody holds or waits: the name is free to be a semaphore of another size.
            var again = await _client.AcquirePermit(name, 5, Ttl);
            Assert.IsTrue(again.IsAcquired);
            Assert.AreEqual(5, again.Holder.Permits);
            await again.DisposeAsync();
        }

        [Test]
        public async Task APermitIsRenewedWhileHeldAndCancellingAWaitGivesUpItsPlace()
        {
            string name = Cluster.Unique("sem/renew");
            // A 1.5 s lease held for 4 s: renewed in the background, never lapsing.
            var p = await _client.AcquirePermit(name, 2, TimeSpan.FromMilliseconds(1500));
            var q = await _client.AcquirePermit(name, 2, TimeSpan.FromMilliseconds(1500));
            try
            {
                Assert.IsTrue(p.IsAcquired && q.IsAcquired);
                await Task.Delay(4000);
                Assert.IsTrue(p.IsAcquired, "the permit was renewed");
                Assert.IsFalse(p.Lost.IsCancellationRequested);
                Assert.IsFalse((await _client.AcquirePermit(name, 2, Ttl)).IsAcquired, "both permits are still held");

                using (var cts = new CancellationTokenSource())
                {
                    var waiter = _client.AcquirePermit(name, 2, Ttl, TimeSpan.FromSeconds(30), default, cts.Token);
                    await Until(name, i => i.Waiters == 1, "the waiter never took its place");
                    cts.Cancel();
                    try
                    {
                        await waiter;
                        Assert.Fail("expected a cancellation");
                    }
                    catch (OperationCanceledException)
                    {
                    }
                }
                await Until(name, i => i.Waiters == 0, "the cancelled waiter kept its place");
            }
            finally
            {
                await p.DisposeAsync();
                await q.DisposeAsync();
            }
        }
    }
}
