// NUnit 2.6 tests of KahunaClient.Watch against the real 3-node cluster of dotnet/test.sh:
// the scenarios every SDK runs (events in order with their kinds and values, a transaction
// as one revision, replay from a past revision, progress, a refused interval, closing while
// a next is pending). Mono mcs C# subset: no `await foreach`, so the enumerator is driven
// by hand.
using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using NUnit.Framework;
using Kahuna.Client;

namespace Kahuna.Client.Tests
{
    [TestFixture]
    public class WatchTests
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

        /// <summary>The next <paramref name="count"/> events, failing after <paramref name="withinMs"/>.</summary>
        private static async Task<List<KahunaWatchEvent>> Collect(KahunaWatch watch, int count, int withinMs)
        {
            var events = new List<KahunaWatchEvent>();
            using (var deadline = new CancellationTokenSource(withinMs))
            {
                var e = watch.GetAsyncEnumerator(deadline.Token);
                try
                {
                    while (events.Count < count)
                    {
                        bool more;
                        try
                        {
                            more = await e.MoveNextAsync();
                        }
                        catch (OperationCanceledException)
                        {
                            Assert.Fail("the watch delivered only " + Show(events) + " within " + withinMs + " ms");
                            throw;
                        }
                        Assert.IsTrue(more, "the enumeration ended early after " + Show(events));
                        events.Add(e.Current);
                    }
                }
                finally
                {
                    await e.DisposeAsync();
                }
            }
            return events;
        }

        private static string Show(IEnumerable<KahunaWatchEvent> events)
        {
            return "[" + string.Join(", ", events.Select(e => e.Type + " " + e.Key + "=" + e.ValueAsString + " @" + e.Revision)) + "]";
        }

        private static string Summary(IEnumerable<KahunaWatchEvent> events, string prefix)
        {
            return string.Join("; ", events.Select(e =>
                e.Type + " " + e.Key.Substring(prefix.Length) + " " + (e.ValueAsString ?? "<none>")));
        }

        /// <summary>Whether <paramref name="t"/> completes within <paramref name="ms"/>.</summary>
        private static async Task<bool> CompletesWithin(Task t, int ms)
        {
            return await Task.WhenAny(t, Task.Delay(ms)) == t;
        }

        [Test]
        public async Task AWatchDeliversEveryChangeInRevisionOrderAndReplaysFromAPastRevision()
        {
            string p = Cluster.Unique("watch") + "/";
            var watch = await _client.Watch(p, prefix: true);
            try
            {
                long opened = watch.Revision;
                var a = await _client.SetKeyValue(p + "a", "1");
                await _client.SetKeyValue(Cluster.Unique("unwatched"), "x");
                var b = await _client.SetKeyValue(p + "b", "2");
                var txn = await _client.CreateTransaction().ThenSet(p + "c", "3").ThenSet(p + "d", "4").Commit();
                Assert.IsTrue(txn.Succeeded);
                await _client.DeleteKeyValue(p + "a");
                await _client.SetKeyValue(p + "e", "short-lived", TimeSpan.FromMilliseconds(300));

                var events = await Collect(watch, 7, 20000);
                Assert.AreEqual(
                    "Put a 1; Put b 2; Put c 3; Put d 4; Delete a <none>; Put e short-lived; Expire e <none>",
                    Summary(events, p));
                Assert.AreEqual(a.Revision, events[0].Revision);
                Assert.Greater(events[0].Revision, opened);
                Assert.AreEqual(1, events[0].Version);
                Assert.AreEqual(a.Revision, events[0].CreateRevision);
                Assert.AreEqual(b.Revision, events[1].Revision);
                Assert.AreEqual(txn.Revision, events[2].Revision, "the transaction's revision");
                Assert.AreEqual(events[2].Revision, events[3].Revision, "a transaction is one revision");
                for (int i = 1; i < events.Count; i++)
                {
                    if (i == 3) continue;
                    Assert.Greater(events[i].Revision, events[i - 1].Revision, "revision order at " + i + ": " + Show(events));
                }
                Assert.IsNull(events[4].Value, "a delete carries no value");
                Assert.AreEqual(a.CreateRevision, events[4].CreateRevision, "a delete names what it removed");
                Assert.IsNull(events[6].Value, "an expiry carries no value");
                Assert.GreaterOrEqual(watch.Revision, events[6].Revision);

                // From a past revision: the same changes, batch by batch, then a live one.
                var replay = await _client.Watch(p, prefix: true, startRevision: a.Revision);
                try
                {
                    var again = new List<KahunaWatchEvent>();
                    var until = DateTime.UtcNow.AddSeconds(20);
                    while (again.Count < events.Count)
                    {
                        Assert.Less(DateTime.UtcNow, until, "replayed only " + Show(again));
                        var batch = await replay.NextBatchAsync();
                        Assert.AreEqual(batch.Events.Count == 0, batch.IsProgress);
                        foreach (var e in batch.Events) Assert.LessOrEqual(e.Revision, batch.Revision);
                        again.AddRange(batch.Events);
                    }
                    Assert.AreEqual(Show(events), Show(again));
                    var f = await _client.SetKeyValue(p + "f", "live");
                    var live = await Collect(replay, 1, 10000);
                    Assert.AreEqual("Put f live", Summary(live, p));
                    Assert.AreEqual(f.Revision, live[0].Revision);
                }
                finally
                {
                    await replay.DisposeAsync();
                }
            }
            finally
            {
                await watch.DisposeAsync();
            }
        }

        [Test]
        public async Task AnIdleWatchHearsProgressUpToAWriteElsewhere()
        {
            var watch = await _client.Watch(Cluster.Unique("idle"), progressInterval: TimeSpan.FromMilliseconds(200));
            try
            {
                var written = await _client.SetKeyValue(Cluster.Unique("elsewhere"), "x");
                var started = DateTime.UtcNow;
                while (true)
                {
                    var next = watch.NextBatchAsync();
                    Assert.IsTrue(await CompletesWithin(next, 5000), "a progress notification within 5 s");
                    var batch = await next;
                    Assert.IsTrue(batch.IsProgress, "an idle key has no events: " + Show(batch.Events));
                    if (batch.Revision >= written.Revision) break;
                    Assert.Less((DateTime.UtcNow - started).TotalSeconds, 10, "progress stuck at " + batch.Revision);
                }
                Assert.GreaterOrEqual(watch.Revision, written.Revision);
            }
            finally
            {
                await watch.DisposeAsync();
            }
        }

        [Test]
        public void AProgressIntervalOf10MsIsRefused()
        {
            var e = Assert.Throws<KahunaException>(() =>
                _client.Watch("k", progressInterval: TimeSpan.FromMilliseconds(10)).GetAwaiter().GetResult());
            Assert.AreEqual(KahunaErrorCode.InvalidArgument, e.Code);
            StringAssert.Contains("progress_interval", e.Message);
            Assert.Throws<ArgumentOutOfRangeException>(() => _client.Watch("k", progressInterval: TimeSpan.Zero));
        }

        [Test]
        public async Task ClosingAWatchCompletesAPendingNextAndTheClientGoesOn()
        {
            long before = KahunaClient.PendingNativeCalls;
            string key = Cluster.Unique("closing");

            // A pending NextBatchAsync fails with ObjectDisposedException.
            var watch = await _client.Watch(key);
            var pending = watch.NextBatchAsync();
            await Task.Delay(300);
            Assert.IsFalse(pending.IsCompleted, "nothing was written: the next is pending");
            long revision = watch.Revision;
            await watch.DisposeAsync();
            Assert.IsTrue(await CompletesWithin(pending, 5000), "closing completes the pending next");
            Assert.IsTrue(pending.IsFaulted);
            Assert.IsInstanceOf<ObjectDisposedException>(pending.Exception.InnerException);
            Assert.Throws<ObjectDisposedException>(() => watch.NextBatchAsync().GetAwaiter().GetResult());
            Assert.AreEqual(revision, watch.Revision, "the revision outlives the handle");

            // A pending MoveNextAsync returns false: closing ends the enumeration.
            var watch2 = await _client.Watch(key);
            var e = watch2.GetAsyncEnumerator();
            var moving = e.MoveNextAsync().AsTask();
            await Task.Delay(300);
            Assert.IsFalse(moving.IsCompleted);
            watch2.Dispose();
            Assert.IsTrue(await CompletesWithin(moving, 5000), "closing completes the pending MoveNextAsync");
            Assert.IsFalse(await moving);

            // Cancelling a next loses nothing: the following one gets the change.
            var watch3 = await _client.Watch(key);
            try
            {
                using (var cts = new CancellationTokenSource())
                {
                    var cancelled = watch3.NextBatchAsync(cts.Token);
                    await Task.Delay(200);
                    cts.Cancel();
                    Assert.IsTrue(await CompletesWithin(cancelled, 5000));
                    Assert.IsTrue(cancelled.IsCanceled);
                }
                var set = await _client.SetKeyValue(key, "after");
                var events = await Collect(watch3, 1, 10000);
                Assert.AreEqual(set.Revision, events[0].Revision);
                Assert.AreEqual("after", events[0].ValueAsString);
            }
            finally
            {
                await watch3.DisposeAsync();
            }

            // The client still works, and no call was left behind.
            Assert.AreEqual("after", (await _client.GetKeyValue(key)).ValueAsString());
            GC.Collect();
            GC.WaitForPendingFinalizers();
            Assert.AreEqual(before, KahunaClient.PendingNativeCalls, "a GCHandle was left behind");
        }

        [Test]
        public async Task DisposingTheClientFailsAPendingNext()
        {
            var c = Cluster.Client();
            var watch = await c.Watch(Cluster.Unique("client-closing"));
            try
            {
                var e = watch.GetAsyncEnumerator();
                var moving = e.MoveNextAsync().AsTask();
                await Task.Delay(300);
                await c.DisposeAsync();
                Assert.IsTrue(await CompletesWithin(moving, 5000), "disposing the client completes the pending next");
                Assert.IsTrue(moving.IsFaulted, "the watch was not closed by its owner: an error, not the end");
                Assert.IsInstanceOf<ObjectDisposedException>(moving.Exception.InnerException);
            }
            finally
            {
                await watch.DisposeAsync();
            }
        }
    }
}
