// NUnit 2.6 tests of Kahuna.Client against a real 3-node cluster started by dotnet/test.sh
// (KAHUNA_TEST_CLUSTER names the cluster.sh state directory). Mono mcs C# subset.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using NUnit.Framework;
using Kahuna.Client;

namespace Kahuna.Client.Tests
{
    internal static class Cluster
    {
        internal static readonly string Dir = Environment.GetEnvironmentVariable("KAHUNA_TEST_CLUSTER");
        internal static readonly string Script = Environment.GetEnvironmentVariable("KAHUNA_CLUSTER_SCRIPT");

        internal static string Run(string args)
        {
            var psi = new ProcessStartInfo("bash", Script + " " + Dir + " " + args);
            psi.UseShellExecute = false;
            psi.RedirectStandardOutput = true;
            using (var p = Process.Start(psi))
            {
                string output = p.StandardOutput.ReadToEnd();
                if (!p.WaitForExit(60000)) throw new TimeoutException("cluster.sh " + args);
                if (p.ExitCode != 0) throw new InvalidOperationException("cluster.sh " + args + " exited " + p.ExitCode);
                return output.Trim();
            }
        }

        internal static string[] Endpoints => Run("endpoints").Split(',');
        internal static int Leader() => int.Parse(Run("leader"));

        internal static KahunaClient Client(KahunaClientOptions options = null)
        {
            return new KahunaClient(Endpoints, options);
        }

        internal static string Unique(string prefix) => prefix + "/" + Guid.NewGuid().ToString("N");

        /// <summary>Waits until the cluster accepts writes again.</summary>
        internal static async Task Healthy(KahunaClient c)
        {
            var until = DateTime.UtcNow.AddSeconds(30);
            while (true)
            {
                try
                {
                    await c.SetKeyValue("health", "ok");
                    return;
                }
                catch (KahunaException) when (DateTime.UtcNow < until)
                {
                    await Task.Delay(200);
                }
            }
        }
    }

    [TestFixture]
    public class KahunaClientTests
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

        [Test]
        public async Task KeyValueSetGetAndCompareAndSet()
        {
            string key = Cluster.Unique("kv");
            var set = await _client.SetKeyValue(key, "one");
            Assert.IsTrue(set.Success);
            Assert.Greater(set.Revision, 0);
            Assert.AreEqual("one", set.ValueAsString());

            var got = await _client.GetKeyValue(key);
            Assert.IsTrue(got.Success);
            Assert.AreEqual("one", got.ValueAsString());
            Assert.AreEqual(set.Revision, got.Revision);
            Assert.AreEqual(1, got.Version);

            var badCas = await _client.TryCompareValueAndSetKeyValue(key, "two", "not-one");
            Assert.IsFalse(badCas.Success);
            Assert.AreEqual("one", badCas.ValueAsString(), "a failed compare returns the current value");
            var cas = await _client.TryCompareValueAndSetKeyValue(key, "two", "one");
            Assert.IsTrue(cas.Success);

            var badRev = await _client.TryCompareRevisionAndSetKeyValue(key, "three", set.Revision);
            Assert.IsFalse(badRev.Success);
            var rev = await _client.TryCompareRevisionAndSetKeyValue(key, "three", cas.Revision);
            Assert.IsTrue(rev.Success);
            Assert.AreEqual(3, rev.Version);

            var old = await _client.GetKeyValueRevision(key, set.Revision);
            Assert.AreEqual("one", old.ValueAsString());

            Assert.IsFalse((await _client.SetKeyValue(key, "x", 0, KeyValueFlags.SetIfNotExists)).Success);
            Assert.IsTrue((await _client.SetKeyValue(key, "four", 0, KeyValueFlags.SetIfExists)).Success);

            var exists = await _client.ExistsKeyValue(key);
            Assert.IsTrue(exists.Success);
            Assert.Greater(exists.Revision, rev.Revision);

            var extended = await _client.ExtendKeyValue(key, TimeSpan.FromMinutes(5));
            Assert.IsTrue(extended.Success);
            Assert.IsTrue(extended.Expires.HasValue);

            Assert.IsTrue((await _client.DeleteKeyValue(key)).Success);
            Assert.IsFalse((await _client.DeleteKeyValue(key)).Success);
            var missing = await _client.GetKeyValue(key);
            Assert.IsFalse(missing.Success);
            Assert.IsNull(missing.Value);
            Assert.IsFalse((await _client.ExistsKeyValue(key)).Success);

            var bytes = new byte[] { 0, 1, 2, 255 };
            await _client.SetKeyValue(key, bytes, TimeSpan.FromMinutes(1));
            CollectionAssert.AreEqual(bytes, (await _client.GetKeyValue(key)).Value);
        }

        [Test]
        public async Task EphemeralKeysAreASeparateKeySpace()
        {
            string key = Cluster.Unique("tier");
            await _client.SetKeyValue(key, "persistent");
            await _client.SetKeyValue(key, "ephemeral", TimeSpan.FromSeconds(10), KeyValueFlags.Set, KeyValueDurability.Ephemeral);
            Assert.AreEqual("persistent", (await _client.GetKeyValue(key)).ValueAsString());
            Assert.AreEqual("ephemeral", (await _client.GetKeyValue(key, KeyValueDurability.Ephemeral)).ValueAsString());
        }

        [Test]
        public async Task ScanByPrefixPagesThroughEveryKey()
        {
            string prefix = Cluster.Unique("scan") + "/";
            for (int i = 0; i < 5; i++) await _client.SetKeyValue(prefix + i, "v" + i);
            var page = await _client.ScanByPrefix(prefix, 2);
            Assert.AreEqual(2, page.Items.Count);
            Assert.IsNotNull(page.NextPageToken);
            var keys = new List<string>();
            byte[] token = null;
            do
            {
                var p = await _client.ScanByPrefix(prefix, 2, token);
                keys.AddRange(p.Items.Select(kv => kv.Key));
                token = p.NextPageToken;
            } while (token != null);
            CollectionAssert.AreEqual(Enumerable.Range(0, 5).Select(i => prefix + i).ToList(), keys);
            var all = await _client.ScanAllByPrefix(prefix);
            Assert.AreEqual(5, all.Count);
            Assert.AreEqual("v4", all[4].ValueAsString());
        }

        [Test]
        public async Task TransactionsCompareAndApplyAtomically()
        {
            string a = Cluster.Unique("txn"), b = Cluster.Unique("txn");
            var ka = await _client.SetKeyValue(a, "100");
            var kb = await _client.SetKeyValue(b, "100");
            var ok = await _client.CreateTransaction()
                .IfRevision(a, ka.Revision).IfRevision(b, kb.Revision)
                .ThenSet(a, "90").ThenSet(b, "110").ThenGet(a)
                .Commit();
            Assert.IsTrue(ok.Succeeded);
            Assert.AreEqual(3, ok.Results.Count);
            Assert.AreEqual("90", ok.Results[2].ValueAsString());
            Assert.AreEqual("110", (await _client.GetKeyValue(b)).ValueAsString());

            // The same compares again are stale: the else branch runs instead.
            var stale = await _client.CreateTransaction()
                .IfRevision(a, ka.Revision)
                .ThenSet(a, "0")
                .ElseGet(a)
                .Commit();
            Assert.IsFalse(stale.Succeeded);
            Assert.AreEqual("90", stale.Results[0].ValueAsString());
            Assert.AreEqual("90", (await _client.GetKeyValue(a)).ValueAsString());

            var created = await _client.CreateTransaction().IfMissing(a + "/new").ThenSet(a + "/new", "x").Commit();
            Assert.IsTrue(created.Succeeded);
            var again = await _client.CreateTransaction().IfMissing(a + "/new").ThenSet(a + "/new", "y").Commit();
            Assert.IsFalse(again.Succeeded);
        }

        [Test]
        public async Task SequencesNeverOverlapAndReplayByIdempotencyKey()
        {
            string name = Cluster.Unique("seq");
            var r1 = await _client.ReserveSequenceRange(name, 10);
            var r2 = await _client.ReserveSequenceRange(name, 5);
            Assert.AreEqual(10, r1.Count);
            Assert.AreEqual(r1.End + 1, r2.Start);
            string key = Guid.NewGuid().ToString();
            var k1 = await _client.ReserveSequenceRange(name, 3, key);
            var k2 = await _client.ReserveSequenceRange(name, 3, key);
            Assert.AreEqual(k1.Start, k2.Start);
            Assert.IsFalse(k1.Replayed);
            Assert.IsTrue(k2.Replayed);
            long next = await _client.NextSequenceValue(name);
            Assert.AreEqual(k1.End + 1, next);
        }

        [Test]
        public async Task LocksHaveIncreasingFencingTokensAndFenceWrites()
        {
            string resource = Cluster.Unique("lock");
            var first = await _client.GetOrCreateLock(resource, TimeSpan.FromSeconds(10));
            try
            {
                Assert.IsTrue(first.IsAcquired);
                Assert.Greater(first.FencingToken, 0);
                Assert.IsNotEmpty(first.Owner);
                Assert.IsFalse(first.Lost.IsCancellationRequested);

                var busy = await _client.GetOrCreateLock(resource, TimeSpan.FromSeconds(10));
                Assert.IsFalse(busy.IsAcquired);
                Assert.IsNotNull(busy.Holder);
                Assert.AreEqual(first.FencingToken, busy.Holder.FencingToken);
                await busy.DisposeAsync();

                var info = await first.GetInfo();
                Assert.AreEqual(first.OwnerAsString, info.OwnerAsString);
                Assert.AreEqual(first.FencingToken, info.FencingToken);

                var ext = await first.TryExtend(TimeSpan.FromSeconds(20));
                Assert.IsTrue(ext.Item1);
                Assert.AreEqual(first.FencingToken, ext.Item2);

                string guarded = Cluster.Unique("fenced");
                await _client.SetKeyValueFenced(guarded, "by-first", first);

                Assert.IsTrue(await first.Release());
                Assert.IsTrue(first.Lost.IsCancellationRequested, "release fires the lost token");
                Assert.IsFalse(first.IsAcquired);
                Assert.IsFalse((await first.TryExtend(TimeSpan.FromSeconds(1))).Item1);

                var second = await _client.GetOrCreateLock(resource, TimeSpan.FromSeconds(10));
                try
                {
                    Assert.IsTrue(second.IsAcquired);
                    Assert.Greater(second.FencingToken, first.FencingToken);
                    var e = Assert.Throws<KahunaException>(() =>
                        _client.SetKeyValueFenced(guarded, "stale", first).GetAwaiter().GetResult());
                    Assert.AreEqual(KahunaErrorCode.Fenced, e.Code);
                    var t = await _client.CreateTransaction().FencedBy(second).ThenSet(guarded, "by-second").Commit();
                    Assert.IsTrue(t.Succeeded);
                    Assert.AreEqual("by-second", (await _client.GetKeyValue(guarded)).ValueAsString());
                }
                finally
                {
                    await second.DisposeAsync();
                }
                Assert.IsNull(await _client.GetLockInfo(resource));
            }
            finally
            {
                await first.DisposeAsync();
            }
        }

        [Test]
        public async Task WaitingForALockAcquiresItOnceReleased()
        {
            string resource = Cluster.Unique("wait");
            var holder = await _client.GetOrCreateLock(resource, TimeSpan.FromSeconds(10), LockDurability.Persistent);
            Assert.IsTrue(holder.IsAcquired);
            var waiter = _client.GetOrCreateLock(resource, TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(10),
                TimeSpan.FromMilliseconds(50), LockDurability.Persistent);
            await Task.Delay(300);
            Assert.IsFalse(waiter.IsCompleted);
            await holder.DisposeAsync();
            var l = await waiter;
            try
            {
                Assert.IsTrue(l.IsAcquired);
                Assert.Greater(l.FencingToken, holder.FencingToken);
            }
            finally
            {
                await l.DisposeAsync();
            }
        }

        [Test]
        public async Task CancellationStopsACallInFlight()
        {
            string resource = Cluster.Unique("cancel");
            var holder = await _client.GetOrCreateLock(resource, TimeSpan.FromSeconds(10));
            try
            {
                var cts = new CancellationTokenSource();
                var sw = Stopwatch.StartNew();
                var waiting = _client.GetOrCreateLock(resource, TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(30),
                    TimeSpan.FromMilliseconds(100), LockDurability.Persistent, cts.Token);
                await Task.Delay(200);
                cts.Cancel();
                try
                {
                    await waiting;
                    Assert.Fail("expected a cancellation");
                }
                catch (OperationCanceledException)
                {
                }
                Assert.Less(sw.ElapsedMilliseconds, 5000);
                Assert.IsTrue(waiting.IsCanceled);

                var pre = new CancellationTokenSource();
                pre.Cancel();
                Assert.IsTrue(_client.GetKeyValue("k", KeyValueDurability.Persistent, pre.Token).IsCanceled);
            }
            finally
            {
                await holder.DisposeAsync();
            }
        }

        [Test]
        public async Task DisposingTheClientCompletesCallsInFlight()
        {
            string resource = Cluster.Unique("dispose");
            var holder = await _client.GetOrCreateLock(resource, TimeSpan.FromSeconds(10));
            try
            {
                var c = Cluster.Client();
                var calls = new List<Task>();
                for (int i = 0; i < 20; i++)
                    calls.Add(c.GetOrCreateLock(resource, TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(30)));
                for (int i = 0; i < 20; i++) calls.Add(c.GetKeyValue("k" + i));
                await Task.Delay(200);
                var sw = Stopwatch.StartNew();
                await c.DisposeAsync();
                Assert.Less(sw.ElapsedMilliseconds, 5000);
                foreach (var t in calls) Assert.IsTrue(t.IsCompleted, "DisposeAsync waited for every call");
                for (int i = 0; i < 20; i++)
                {
                    Assert.IsTrue(calls[i].IsFaulted);
                    Assert.IsInstanceOf<ObjectDisposedException>(calls[i].Exception.InnerException);
                }
                Assert.Throws<ObjectDisposedException>(() => c.GetKeyValue("k").GetAwaiter().GetResult());
                c.Dispose();
            }
            finally
            {
                await holder.DisposeAsync();
            }
        }

        [Test]
        public async Task TenThousandCallsLeaveNoGCHandleBehind()
        {
            string key = Cluster.Unique("many");
            await _client.SetKeyValue(key, "v");
            long before = KahunaClient.PendingNativeCalls;
            int done = 0;
            for (int batch = 0; batch < 100; batch++)
            {
                var tasks = new Task<KahunaKeyValue>[100];
                for (int i = 0; i < tasks.Length; i++) tasks[i] = _client.GetKeyValue(key);
                foreach (var kv in await Task.WhenAll(tasks))
                {
                    Assert.AreEqual("v", kv.ValueAsString());
                    done++;
                }
            }
            Assert.AreEqual(10000, done);
            GC.Collect();
            GC.WaitForPendingFinalizers();
            Assert.AreEqual(before, KahunaClient.PendingNativeCalls, "a GCHandle was left behind");
        }

        [Test]
        public void ErrorsAreTypedExceptions()
        {
            var e = Assert.Throws<KahunaException>(() => new KahunaClient(new string[0]));
            Assert.AreEqual(KahunaErrorCode.Configuration, e.Code);
            var bad = Assert.Throws<KahunaException>(() =>
                _client.SetKeyValue("", "v").GetAwaiter().GetResult());
            Assert.AreEqual(KahunaErrorCode.InvalidArgument, bad.Code);
            Assert.IsFalse(bad.IsRetryable);
            var ttl = Assert.Throws<KahunaException>(() =>
                _client.GetOrCreateLock("r", TimeSpan.Zero).GetAwaiter().GetResult());
            Assert.AreEqual(KahunaErrorCode.InvalidArgument, ttl.Code);
        }

        [Test]
        public async Task ZLockIsLostWhenTheLeaderPausesLongerThanItsTtl()
        {
            var options = new KahunaClientOptions();
            options.AttemptTimeout = TimeSpan.FromSeconds(3);
            var c = Cluster.Client(options);
            try
            {
                var l = await c.GetOrCreateLock(Cluster.Unique("pause"), TimeSpan.FromSeconds(1));
                Assert.IsTrue(l.IsAcquired);
                var lost = new TaskCompletionSource<bool>();
                l.Lost.Register(() => lost.TrySetResult(true));
                int leader = Cluster.Leader();
                var sw = Stopwatch.StartNew();
                Cluster.Run("stop " + leader);
                try
                {
                    var first = await Task.WhenAny(lost.Task, Task.Delay(4000));
                    Assert.AreSame(lost.Task, first, "the lost token did not fire while the leader was paused");
                    Assert.Less(sw.ElapsedMilliseconds, 2500, "lost should fire within about one TTL");
                    Assert.IsFalse(l.IsAcquired);
                }
                finally
                {
                    Cluster.Run("cont " + leader);
                }
                await l.DisposeAsync();
                await Cluster.Healthy(c);
            }
            finally
            {
                await c.DisposeAsync();
            }
        }

        [Test]
        public async Task ZZLeaderKillDuringUseIsRetried()
        {
            var c = Cluster.Client();
            try
            {
                await Cluster.Healthy(c);
                string key = Cluster.Unique("failover");
                int leader = Cluster.Leader();
                var writer = Task.Run(async () =>
                {
                    int n = 0;
                    var sw = Stopwatch.StartNew();
                    while (sw.ElapsedMilliseconds < 5000)
                    {
                        await c.SetKeyValue(key, (++n).ToString());
                        var got = await c.GetKeyValue(key);
                        Assert.AreEqual(n.ToString(), got.ValueAsString());
                    }
                    return n;
                });
                await Task.Delay(1000);
                Cluster.Run("kill " + leader);
                int written = await writer;
                Assert.Greater(written, 0);
                var seq = await c.ReserveSequenceRange(Cluster.Unique("seq"), 1);
                Assert.AreEqual(1, seq.Start);
                Cluster.Run("start " + leader);
            }
            finally
            {
                await c.DisposeAsync();
            }
        }

        [Test]
        public void DeliberateFailureWhenRequested()
        {
            if (Environment.GetEnvironmentVariable("KAHUNA_FORCE_FAIL") == "1")
                Assert.AreEqual(1, 2, "deliberate failure");
        }
    }
}
