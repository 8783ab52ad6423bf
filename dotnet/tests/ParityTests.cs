// NUnit 2.6 tests of what Kahuna.Client 1.x code relies on: enum values, overloads,
// members by owner, options, errors (issue 22), against the 3-node test cluster.
using System;
using System.Collections.Generic;
using System.Linq;
using System.Reflection;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using NUnit.Framework;
using Kahuna.Client;

namespace Kahuna.Client.Tests
{
    [TestFixture]
    public class ParityTests
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

        /// <summary>Waits out the ephemeral grace period of a leader change (an earlier test kills
        /// the leader): until it has passed, the new leader grants no ephemeral lock.</summary>
        internal static async Task EphemeralLocksGranted(KahunaClient c)
        {
            var probe = await c.GetOrCreateLock(Cluster.Unique("probe"), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30),
                TimeSpan.FromMilliseconds(100), LockDurability.Ephemeral);
            Assert.IsTrue(probe.IsAcquired, "ephemeral locks are granted again");
            await probe.DisposeAsync();
        }

        // ---- 1. enum values ----------------------------------------------------------------

        [Test]
        public void EnumValuesAreKahuna1xs()
        {
            Assert.AreEqual(0, (int)LockDurability.Ephemeral);
            Assert.AreEqual(1, (int)LockDurability.Persistent);
            Assert.AreEqual(LockDurability.Ephemeral, default(LockDurability));
            Assert.AreEqual(0, (int)KeyValueDurability.Ephemeral);
            Assert.AreEqual(1, (int)KeyValueDurability.Persistent);
            Assert.AreEqual(1, (int)SequenceDurability.Persistent);
            Assert.AreEqual(0, (int)KeyValueFlags.None);
            Assert.AreEqual(1, (int)KeyValueFlags.Set);
            Assert.AreEqual(2, (int)KeyValueFlags.SetNoRevision);
            Assert.AreEqual(4, (int)KeyValueFlags.SetIfExists);
            Assert.AreEqual(8, (int)KeyValueFlags.SetIfNotExists);
            Assert.AreEqual(16, (int)KeyValueFlags.SetIfEqualToValue);
            Assert.AreEqual(32, (int)KeyValueFlags.SetIfEqualToRevision);
            Assert.IsTrue(typeof(KeyValueFlags).IsDefined(typeof(FlagsAttribute), false));
        }

        [Test]
        public void DefaultsInSignaturesArePersistentAndSet()
        {
            foreach (var m in typeof(KahunaClient).GetMethods().Concat(typeof(KahunaLock).GetMethods()))
            {
                foreach (var p in m.GetParameters())
                {
                    if (!p.IsOptional) continue;
                    if (p.ParameterType == typeof(LockDurability))
                        Assert.AreEqual(LockDurability.Persistent, p.DefaultValue, m + " " + p.Name);
                    if (p.ParameterType == typeof(KeyValueDurability))
                        Assert.AreEqual(KeyValueDurability.Persistent, p.DefaultValue, m + " " + p.Name);
                    if (p.ParameterType == typeof(KeyValueFlags))
                        Assert.AreEqual(KeyValueFlags.Set, p.DefaultValue, m + " " + p.Name);
                }
            }
        }

        [Test]
        public async Task EachDurabilityValueReachesItsOwnTier()
        {
            string key = Cluster.Unique("tier-values");
            await _client.SetKeyValue(key, "p");
            await _client.SetKeyValue(key, "e", 10000, KeyValueFlags.Set, (KeyValueDurability)0);
            Assert.AreEqual("p", (await _client.GetKeyValue(key, (KeyValueDurability)1)).ValueAsString());
            Assert.AreEqual("e", (await _client.GetKeyValue(key, KeyValueDurability.Ephemeral)).ValueAsString());

            // default(LockDurability) is Ephemeral, as in Kahuna 1.x: the lock lands in the ephemeral tier.
            await EphemeralLocksGranted(_client);
            string resource = Cluster.Unique("tier-lock");
            var l = await _client.GetOrCreateLock(resource, TimeSpan.FromSeconds(10), default(LockDurability));
            try
            {
                Assert.IsTrue(l.IsAcquired);
                Assert.AreEqual(LockDurability.Ephemeral, l.Durability);
                Assert.IsNotNull(await _client.GetLockInfo(resource, LockDurability.Ephemeral));
                Assert.IsNull(await _client.GetLockInfo(resource, LockDurability.Persistent));
            }
            finally
            {
                await l.DisposeAsync();
            }
            var p = await _client.GetOrCreateLock(resource, TimeSpan.FromSeconds(10));
            try
            {
                Assert.AreEqual(LockDurability.Persistent, p.Durability);
                Assert.IsNotNull(await _client.GetLockInfo(resource));
                Assert.IsNull(await _client.GetLockInfo(resource, LockDurability.Ephemeral));
            }
            finally
            {
                await p.DisposeAsync();
            }
        }

        [Test]
        public void UndefinedEnumValuesAreRefusedNotSent()
        {
            Assert.Throws<ArgumentOutOfRangeException>(() =>
                _client.GetKeyValue("k", (KeyValueDurability)7).GetAwaiter().GetResult());
            Assert.Throws<ArgumentOutOfRangeException>(() =>
                _client.GetLockInfo("r", (LockDurability)2).GetAwaiter().GetResult());
            Assert.Throws<ArgumentException>(() =>
                _client.SetKeyValue("k", "v", 0, KeyValueFlags.SetIfExists | KeyValueFlags.SetIfNotExists).GetAwaiter().GetResult());
            Assert.Throws<ArgumentException>(() =>
                _client.SetKeyValue("k", "v", 0, (KeyValueFlags)64).GetAwaiter().GetResult());
            Assert.Throws<ArgumentException>(() =>
                _client.SetKeyValue("k", "v", 0, KeyValueFlags.SetIfEqualToValue).GetAwaiter().GetResult());
        }

        [Test]
        public async Task KeyValueFlagsKeepTheirMeaning()
        {
            string key = Cluster.Unique("flags");
            Assert.IsFalse((await _client.SetKeyValue(key, "x", 0, KeyValueFlags.SetIfExists)).Success);
            Assert.IsTrue((await _client.SetKeyValue(key, "a", 0, KeyValueFlags.SetIfNotExists)).Success);
            Assert.IsFalse((await _client.SetKeyValue(key, "b", 0, KeyValueFlags.Set | KeyValueFlags.SetIfNotExists)).Success);
            Assert.IsTrue((await _client.SetKeyValue(key, "c", 0, KeyValueFlags.Set | KeyValueFlags.SetIfExists)).Success);
            Assert.IsTrue((await _client.SetKeyValue(key, "d", 0, KeyValueFlags.None)).Success);
            Assert.IsTrue((await _client.SetKeyValue(key, "e", 0, KeyValueFlags.SetNoRevision)).Success);
            Assert.IsTrue((await _client.SetKeyValue(key, "f")).Success);
            var got = await _client.GetKeyValue(key);
            Assert.AreEqual("f", got.ValueAsString());
            Assert.AreEqual(5, got.Version);
            Assert.IsTrue((await _client.SetKeyValueNoRevision(key, Encoding.UTF8.GetBytes(" True "))).Success);
            got = await _client.GetKeyValue(key);
            Assert.IsTrue(got.ValueAsBool());
            Assert.Greater(got.Revision, 0, "every write has a revision here");
            var e = Assert.Throws<KahunaException>(() => got.ValueAsLong());
            Assert.AreEqual(KahunaErrorCode.InvalidArgument, e.Code);
            await _client.SetKeyValue(key, " -42 ");
            Assert.AreEqual(-42, (await _client.GetKeyValue(key)).ValueAsLong());
            var missing = await _client.GetKeyValue(Cluster.Unique("missing"));
            Assert.Throws<KahunaException>(() => missing.ValueAsBool());
            Assert.Throws<KahunaException>(() => missing.ValueAsLong());
        }
    
        // ---- 2. members of Kahuna 1.x ------------------------------------------------------

        [Test]
        public async Task LocksTakenAsAnOwnerAreExtendedAndReleasedByOwner()
        {
            string resource = Cluster.Unique("owner");
            string owner = "worker-" + Guid.NewGuid().ToString("N");
            var l = await _client.GetOrCreateLock(resource, owner, TimeSpan.FromSeconds(10));
            try
            {
                Assert.IsTrue(l.IsAcquired, "check 1");
                Assert.AreEqual(owner, l.OwnerAsString);

                var ext = await _client.TryExtendLock(resource, owner, TimeSpan.FromSeconds(40));
                Assert.IsTrue(ext.Item1, "check 3");
                Assert.AreEqual(l.FencingToken, ext.Item2);
                var info = await _client.GetLockInfo(resource);
                Assert.Greater(info.Remaining, TimeSpan.FromSeconds(20), "extended to 40 s");
                Assert.IsTrue((await _client.TryExtendLock(resource, Encoding.UTF8.GetBytes(owner), 30000)).Item1, "check 4");
                Assert.IsTrue((await _client.TryExtendLock(resource, owner, 30000, LockDurability.Persistent)).Item1, "check 5");

                var other = await _client.TryExtendLock(resource, "someone-else", TimeSpan.FromSeconds(5));
                Assert.IsFalse(other.Item1);
                Assert.AreEqual(0, other.Item2);
                Assert.IsFalse(await _client.Unlock(resource, "someone-else"));
                Assert.IsFalse(await _client.Unlock(resource, owner, LockDurability.Ephemeral), "the other tier is another lock");

                // A restarted process (another client, no KahunaLock object) releases it by owner.
                var restarted = Cluster.Client();
                try
                {
                    Assert.IsTrue(await restarted.Unlock(resource, Encoding.UTF8.GetBytes(owner)), "check 6");
                }
                finally
                {
                    await restarted.DisposeAsync();
                }
                Assert.IsNull(await _client.GetLockInfo(resource));
                Assert.IsFalse((await _client.TryExtendLock(resource, owner, 1000)).Item1);
                Assert.IsFalse(await _client.Unlock(resource, owner));
                Assert.Throws<ArgumentException>(() => _client.Unlock(resource, "").GetAwaiter().GetResult());

                // Locking again as the same owner keeps the grant and its token; the owner's grant is
                // one lock, so releasing either object releases it.
                var again = await _client.GetOrCreateLock(resource, Encoding.UTF8.GetBytes(owner), TimeSpan.FromSeconds(10));
                var same = await _client.GetOrCreateLock(resource, owner, TimeSpan.FromSeconds(10));
                Assert.IsTrue(again.IsAcquired && same.IsAcquired, "re-lock as the owner");
                Assert.Greater(again.FencingToken, l.FencingToken, "a new grant has a higher token");
                Assert.AreEqual(again.FencingToken, same.FencingToken);
                Assert.IsTrue(await same.Release(), "release by one object");
                Assert.IsNull(await _client.GetLockInfo(resource));
                await again.DisposeAsync();
                await same.DisposeAsync();
                Assert.Throws<ArgumentException>(() =>
                    _client.GetOrCreateLock(resource, "", TimeSpan.FromSeconds(1)).GetAwaiter().GetResult());
            }
            finally
            {
                await l.DisposeAsync();
            }
        }

        [Test]
        public async Task MillisecondOverloadsOfKahuna1x()
        {
            string key = Cluster.Unique("ms");
            var set = await _client.SetKeyValue(key, Encoding.UTF8.GetBytes("a"));
            Assert.IsNull(set.Expires);
            // byte[] compare-and-set defaults to a 30 s expiry in Kahuna 1.x; the string form to none.
            var cas = await _client.TryCompareValueAndSetKeyValue(key, Encoding.UTF8.GetBytes("b"), Encoding.UTF8.GetBytes("a"));
            Assert.IsTrue(cas.Success);
            Assert.IsTrue(cas.Expires.HasValue);
            var left = cas.Expires.Value - DateTimeOffset.UtcNow;
            Assert.That(left.TotalSeconds, Is.InRange(20.0, 40.0));
            var cas2 = await _client.TryCompareValueAndSetKeyValue(key, "c", "b");
            Assert.IsTrue(cas2.Success);
            Assert.IsNull(cas2.Expires);
            var rev = await _client.TryCompareRevisionAndSetKeyValue(key, "d", cas2.Revision, 5000);
            Assert.IsTrue(rev.Success);
            Assert.IsTrue(rev.Expires.HasValue);
            var revBytes = await _client.TryCompareRevisionAndSetKeyValue(key, Encoding.UTF8.GetBytes("e"), rev.Revision, 0,
                KeyValueDurability.Persistent);
            Assert.IsTrue(revBytes.Success);
            Assert.IsNull(revBytes.Expires);
            var ext = await _client.ExtendKeyValue(key, 60000);
            Assert.IsTrue(ext.Success);
            Assert.IsTrue(ext.Expires.HasValue);
            Assert.IsFalse((await _client.TryCompareValueAndSetKeyValue(key, "x", "not-e", 1000)).Success);

            string resource = Cluster.Unique("ms-lock");
            await EphemeralLocksGranted(_client);
            var l = await _client.GetOrCreateLock(resource, 5000, LockDurability.Ephemeral);
            try
            {
                Assert.IsTrue(l.IsAcquired);
                Assert.AreEqual(LockDurability.Ephemeral, l.Durability);
            }
            finally
            {
                await l.DisposeAsync();
            }
        }

        [Test]
        public async Task KeyHistoryListsEveryChangeOldestFirst()
        {
            string key = Cluster.Unique("history");
            var a = await _client.SetKeyValue(key, "1");
            var b = await _client.SetKeyValue(key, "2");
            var c = await _client.SetKeyValue(key, "3");
            var d = await _client.DeleteKeyValue(key);
            var h = await _client.GetKeyValueHistory(key);
            Assert.AreEqual(key, h.Key);
            Assert.AreEqual(4, h.Events.Count);
            CollectionAssert.AreEqual(new[] { KahunaKeyEventKind.Put, KahunaKeyEventKind.Put, KahunaKeyEventKind.Put, KahunaKeyEventKind.Delete },
                h.Events.Select(e => e.Kind).ToArray());
            CollectionAssert.AreEqual(new[] { a.Revision, b.Revision, c.Revision, d.Revision }, h.Events.Select(e => e.Revision).ToArray());
            Assert.AreEqual("1", h.Events[0].KeyValue.ValueAsString());
            Assert.AreEqual("3", h.Events[3].KeyValue.ValueAsString(), "a delete carries the key as it was");
            Assert.LessOrEqual(h.RetainedFromRevision, a.Revision);
            Assert.GreaterOrEqual(h.Revision, d.Revision);
            Assert.AreEqual(2, (await _client.GetKeyValueHistory(key, 2)).Events.Count);
            Assert.AreEqual(0, (await _client.GetKeyValueHistory(Cluster.Unique("never"))).Events.Count);
        }

        [Test]
        public async Task ClusterStatusAndMembers()
        {
            var s = await _client.GetClusterStatus();
            Assert.AreEqual(3, s.Members.Count);
            Assert.Greater(s.Term, 0);
            Assert.Greater(s.LeaderId, 0);
            Assert.IsTrue(s.Members.Any(m => m.Id == s.LeaderId));
            Assert.IsNotEmpty(s.State);
            Assert.IsNotEmpty(s.Storage);
            Assert.GreaterOrEqual(s.CommittedIndex, s.AppliedIndex > 0 ? 1 : 0);
            var members = await _client.GetClusterMembers();
            Assert.IsTrue(members.All(m => m.IsVoter));
            CollectionAssert.AreEquivalent(Cluster.Endpoints, members.Select(m => m.ClientAddress).ToArray());
            CollectionAssert.AreEquivalent(new long[] { 1, 2, 3 }, members.Select(m => m.Id).ToArray());
        }

        [Test]
        public async Task SequencesPeekAndTakeKahuna1xSignatures()
        {
            string name = Cluster.Unique("peek");
            Assert.AreEqual(1, await _client.PeekSequence(name));
            var r = await _client.ReserveSequenceRange(name, 5, null, SequenceDurability.Persistent);
            Assert.AreEqual(1, r.Start);
            Assert.AreEqual(6, await _client.PeekSequence(name));
            Assert.AreEqual(6, await _client.NextSequenceValue(name, null, SequenceDurability.Persistent));
            Assert.AreEqual(7, await _client.PeekSequence(name));
            Assert.Throws<ArgumentOutOfRangeException>(() =>
                _client.NextSequenceValue(name, null, (SequenceDurability)0).GetAwaiter().GetResult());
        }
    
        // ---- 3. construction, options, errors ----------------------------------------------

        [Test]
        public async Task OneUrlWithOptionsAndALoggerCallback()
        {
            var messages = new System.Collections.Concurrent.ConcurrentQueue<KeyValuePair<KahunaLogLevel, string>>();
            var options = new KahunaClientOptions();
            options.DefaultOperationTimeout = TimeSpan.FromSeconds(20);
            Assert.AreEqual(TimeSpan.FromSeconds(20), options.OperationTimeout);
            options.Logger = (level, message) => messages.Enqueue(new KeyValuePair<KahunaLogLevel, string>(level, message));
            var c = new KahunaClient("http://" + Cluster.Endpoints[0], options);
            try
            {
                string key = Cluster.Unique("one-url");
                Assert.IsTrue((await c.SetKeyValue(key, "v")).Success);
                Assert.AreEqual("v", (await c.GetKeyValue(key)).ValueAsString());
                var e = Assert.Throws<KahunaException>(() => c.SetKeyValue("", "v").GetAwaiter().GetResult());
                Assert.AreEqual(KahunaErrorCode.InvalidArgument, e.Code);
                var l = await c.GetOrCreateLock(Cluster.Unique("logged"), TimeSpan.FromSeconds(5));
                Assert.IsTrue(l.IsAcquired);
                await l.DisposeAsync();
                await Task.Delay(200);
                var all = messages.ToArray();
                Assert.IsTrue(all.Any(m => m.Key == KahunaLogLevel.Debug && m.Value.Contains("created")), "creation logged");
                Assert.IsTrue(all.Any(m => m.Key == KahunaLogLevel.Warning && m.Value.Contains("InvalidArgument")), "failure logged");
                Assert.IsTrue(all.Any(m => m.Key == KahunaLogLevel.Debug && m.Value.Contains("acquired")), "lock logged");
                Assert.IsTrue(all.Any(m => m.Key == KahunaLogLevel.Information && m.Value.Contains("no longer held")), "release logged");
            }
            finally
            {
                await c.DisposeAsync();
            }

            // A logger that throws breaks nothing; a null options object means the defaults.
            var throwing = new KahunaClientOptions();
            throwing.Logger = (level, message) => { throw new InvalidOperationException("bad logger"); };
            var t = new KahunaClient(Cluster.Endpoints[1], throwing);
            var d = new KahunaClient(Cluster.Endpoints[2], null);
            try
            {
                Assert.Throws<KahunaException>(() => t.SetKeyValue("", "v").GetAwaiter().GetResult());
                Assert.IsTrue((await t.SetKeyValue(Cluster.Unique("throwing"), "v")).Success);
                Assert.IsTrue((await d.SetKeyValue(Cluster.Unique("defaults"), "v")).Success);
            }
            finally
            {
                await t.DisposeAsync();
                await d.DisposeAsync();
            }
        }

        [Test]
        public void ExceptionsTakeKahuna1xsArgumentOrder()
        {
            var e = new KahunaException("sequence used up", KahunaErrorCode.SequenceExhausted);
            Assert.AreEqual(KahunaErrorCode.SequenceExhausted, e.Code);
            StringAssert.Contains("sequence used up", e.Message);
            Assert.IsFalse(e.IsRetryable);
            Assert.IsTrue(new KahunaException("x", KahunaErrorCode.Unavailable).IsRetryable);
            var other = new KahunaException(KahunaErrorCode.Fenced, "stale");
            Assert.AreEqual(KahunaErrorCode.Fenced, other.Code);
        }

        /// <summary>Every status of the C ABI (one per kind of the core's error catalogue) reaches C#
        /// as the code of the same number and name: none is folded into Other.</summary>
        [Test]
        public void EveryCoreErrorCodeIsReachable()
        {
            var asm = typeof(KahunaClient).Assembly;
            var native = asm.GetType("Kahuna.Client.Native.NativeMethods", true);
            var interop = asm.GetType("Kahuna.Client.Interop", true);
            var error = interop.GetMethod("Error", BindingFlags.Static | BindingFlags.NonPublic);
            int statuses = 0;
            foreach (var f in native.GetFields(BindingFlags.Static | BindingFlags.NonPublic | BindingFlags.Public))
            {
                if (!f.Name.StartsWith("KAHUNA_STATUS_") || f.Name == "KAHUNA_STATUS_OK") continue;
                statuses++;
                int status = (int)f.GetValue(null);
                string name = string.Concat(f.Name.Substring("KAHUNA_STATUS_".Length).Split('_')
                    .Select(w => w.Substring(0, 1) + w.Substring(1).ToLowerInvariant()));
                var code = (KahunaErrorCode)Enum.Parse(typeof(KahunaErrorCode), name);
                Assert.AreEqual(status, (int)code, name);
                var ex = (Exception)error.Invoke(null, new object[] { status, null });
                if (f.Name == "KAHUNA_STATUS_CLOSED")
                    Assert.IsInstanceOf<ObjectDisposedException>(ex);
                else if (f.Name == "KAHUNA_STATUS_CANCELLED")
                    Assert.IsInstanceOf<OperationCanceledException>(ex);
                else
                    Assert.AreEqual(code, ((KahunaException)ex).Code, name);
            }
            Assert.GreaterOrEqual(statuses, 19);
            Assert.AreEqual(18, (int)KahunaErrorCode.SequenceExhausted);
        }
    }
}
