// NUnit 2.6 tests of leader election against the real 3-node cluster of dotnet/test.sh: the
// scenarios every SDK runs (elected with a value and observed; a proclaimed value with the same
// epoch; the next candidate elected on resignation with a larger epoch; a candidate not elected
// within its wait; no leader after the last resigns; closing an observer while a next is
// pending). Mono mcs C# subset: no `await foreach`, so the enumerator is driven by hand.
using System;
using System.Threading;
using System.Threading.Tasks;
using NUnit.Framework;
using Kahuna.Client;

namespace Kahuna.Client.Tests
{
    [TestFixture]
    public class ElectionTests
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

        private static async Task<bool> CompletesWithin(Task t, int ms)
        {
            return await Task.WhenAny(t, Task.Delay(ms)) == t;
        }

        /// <summary>The observer's next item, failing after 10 s.</summary>
        private static async Task<KahunaLeader> Next(KahunaElectionObserver observer, string what)
        {
            using (var deadline = new CancellationTokenSource(10000))
            {
                try
                {
                    return await observer.NextAsync(deadline.Token);
                }
                catch (OperationCanceledException)
                {
                    Assert.Fail("the observer saw nothing within 10 s; expected " + what);
                    throw;
                }
            }
        }

        /// <summary>The observer's first leader. The member that serves an observer answers from its
        /// applied state, which may be a moment behind a campaign just answered by the Raft leader:
        /// "no leader" may come first, but never another leader.</summary>
        private static async Task<KahunaLeader> FirstLeader(KahunaElectionObserver observer)
        {
            var seen = await Next(observer, "the leader");
            var until = DateTime.UtcNow.AddSeconds(5);
            while (seen == null && DateTime.UtcNow < until) seen = await Next(observer, "the leader after no leader");
            return seen;
        }

        private static void AssertLeader(KahunaLeader seen, KahunaLeadership expected, string value, string what)
        {
            Assert.IsNotNull(seen, what + ": expected a leader, saw none");
            Assert.AreEqual(expected.Owner, seen.Owner, what + ": owner");
            Assert.AreEqual(expected.Epoch, seen.Epoch, what + ": epoch");
            Assert.AreEqual(value, seen.ValueAsString(), what + ": value");
        }

        [Test]
        public async Task CandidatesAreElectedInTurnAndObserversFollowThem()
        {
            string name = Cluster.Unique("election");

            // (a) A is elected with its value; an observer's first item and a read agree.
            var a = await _client.Campaign(name, "a-1", TimeSpan.FromSeconds(10));
            Assert.IsNotNull(a, "nobody leads, so A is elected at once");
            Assert.IsTrue(a.IsLeader);
            Assert.Greater(a.Epoch, 0);
            Assert.AreEqual(name, a.Name);
            Assert.IsFalse(a.Lost.IsCancellationRequested);
            var observer = await _client.Observe(name);
            KahunaLeadership b = null;
            try
            {
                AssertLeader(await FirstLeader(observer), a, "a-1", "first item");
                AssertLeader(await _client.GetElectionLeader(name), a, "a-1", "election leader");
                var info = await _client.GetLockInfo(name);
                Assert.AreEqual("a-1", System.Text.Encoding.UTF8.GetString(info.Value), "the lock carries the value");

                // (b) A proclaims a new value: same leader, same epoch.
                await a.Proclaim("a-2");
                AssertLeader(await Next(observer, "A's new value"), a, "a-2", "after proclaim");

                // (c) B waits while A leads; A resigns; B is elected with a larger epoch.
                var bTask = _client.Campaign(name, Encoding("b-1"), TimeSpan.FromSeconds(10));
                int waiters = 0;
                for (int i = 0; i < 100 && waiters == 0; i++)
                {
                    await Task.Delay(50);
                    waiters = (await _client.GetLockInfo(name)).Waiters;
                }
                Assert.AreEqual(1, waiters, "B waits in the election's queue");
                Assert.IsFalse(bTask.IsCompleted, "B is not elected while A leads");
                Assert.IsTrue(await a.Resign(), "A still led when it resigned");
                Assert.IsFalse(a.IsLeader);
                Assert.IsTrue(await CompletesWithin(bTask, 10000), "B is elected once A resigns");
                b = await bTask;
                Assert.IsNotNull(b);
                Assert.IsTrue(b.IsLeader);
                Assert.Greater(b.Epoch, a.Epoch, "a later leader has a larger epoch");
                AssertLeader(await Next(observer, "B"), b, "b-1", "after A resigned");
                for (int i = 0; i < 100 && !a.Lost.IsCancellationRequested; i++) await Task.Delay(20);
                Assert.IsTrue(a.Lost.IsCancellationRequested, "A's lost token fires once it resigned");
                var stale = Assert.Throws<KahunaException>(() => a.Proclaim("stale").GetAwaiter().GetResult());
                Assert.AreEqual(KahunaErrorCode.LockNotHeld, stale.Code);

                // (d) C is not elected within a short wait while B leads.
                var c = await _client.Campaign(name, "c-1", TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(300));
                Assert.IsNull(c, "B still leads, so C is not elected within 300 ms");
                AssertLeader(await _client.GetElectionLeader(name), b, "b-1", "still B");

                // (e) B resigns (by disposing): nobody leads.
                await b.DisposeAsync();
                Assert.IsNull(await Next(observer, "no leader"), "after B resigned");
                Assert.IsNull(await _client.GetElectionLeader(name));
            }
            finally
            {
                // Also on a failure, so no lost notification is left pending for later tests.
                await observer.DisposeAsync();
                await a.DisposeAsync();
                if (b != null) await b.DisposeAsync();
            }
        }

        private static byte[] Encoding(string s) => System.Text.Encoding.UTF8.GetBytes(s);

        [Test]
        public async Task ClosingAnObserverCompletesAPendingNextAndTheClientGoesOn()
        {
            long before = KahunaClient.PendingNativeCalls;
            string name = Cluster.Unique("observing");

            // (f) A pending NextAsync fails with ObjectDisposedException when the observer closes.
            var observer = await _client.Observe(name);
            Assert.IsNull(await Next(observer, "no leader"), "nobody leads a new election");
            var pending = observer.NextAsync();
            await Task.Delay(300);
            Assert.IsFalse(pending.IsCompleted, "nothing changed: the next is pending");
            await observer.DisposeAsync();
            Assert.IsTrue(await CompletesWithin(pending, 5000), "closing completes the pending next");
            Assert.IsTrue(pending.IsFaulted);
            Assert.IsInstanceOf<ObjectDisposedException>(pending.Exception.InnerException);
            Assert.Throws<ObjectDisposedException>(() => observer.NextAsync().GetAwaiter().GetResult());

            // A pending MoveNextAsync returns false: closing ends the enumeration.
            var observer2 = await _client.Observe(name);
            var e = observer2.GetAsyncEnumerator();
            Assert.IsTrue(await e.MoveNextAsync());
            Assert.IsNull(e.Current, "a null element: no leader");
            var moving = e.MoveNextAsync().AsTask();
            await Task.Delay(300);
            Assert.IsFalse(moving.IsCompleted);
            observer2.Dispose();
            Assert.IsTrue(await CompletesWithin(moving, 5000), "closing completes the pending MoveNextAsync");
            Assert.IsFalse(await moving);

            // The client still works: a campaign is elected and read back, and no call was left behind.
            var l = await _client.Campaign(name, "after", TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(5));
            Assert.IsNotNull(l);
            Assert.AreEqual("after", (await _client.GetElectionLeader(name)).ValueAsString());
            await l.DisposeAsync();
            // The lost notification of a resigned leadership completes just after the resignation.
            for (int i = 0; i < 100 && KahunaClient.PendingNativeCalls != before; i++)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
                await Task.Delay(20);
            }
            Assert.AreEqual(before, KahunaClient.PendingNativeCalls, "a GCHandle was left behind");
        }
    }
}
