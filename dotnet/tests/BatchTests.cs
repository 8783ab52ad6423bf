// NUnit 2.6 tests of the batch and range calls (GetManyKeyValues, SetManyKeyValues,
// DeleteManyKeyValues, GetByRange, ScanByRange) against the 3-node cluster. Mono mcs C# subset.
using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading.Tasks;
using NUnit.Framework;
using Kahuna.Client;

namespace Kahuna.Client.Tests
{
    [TestFixture]
    public class BatchTests
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

        private static void AssertInvalid(Func<Task> call, string what)
        {
            var e = Assert.Throws<KahunaException>(() => call().GetAwaiter().GetResult(), what);
            Assert.AreEqual(KahunaErrorCode.InvalidArgument, e.Code, what + ": " + e.Message);
        }

        private static async Task<List<KahunaKeyValue>> All(KahunaRangeScan scan)
        {
            var all = new List<KahunaKeyValue>();
            var e = scan.GetAsyncEnumerator();
            while (await e.MoveNextAsync()) all.Add(e.Current);
            await e.DisposeAsync();
            return all;
        }

        [Test]
        public async Task GetManyReadsAtOneRevisionAndMarksMissingKeys()
        {
            string p = Cluster.Unique("getmany");
            var a = await _client.SetKeyValue(p + "/a", "1");
            var c = await _client.SetKeyValue(p + "/c", "3");
            var got = await _client.GetManyKeyValues(new[] { p + "/c", p + "/b", p + "/a" });
            Assert.AreEqual(3, got.Items.Count);
            Assert.AreEqual(new[] { p + "/c", p + "/b", p + "/a" }, got.Items.Select(kv => kv.Key).ToArray(), "the order asked");
            Assert.IsTrue(got.Items[0].Success);
            Assert.AreEqual("3", got.Items[0].ValueAsString());
            Assert.AreEqual(c.Revision, got.Items[0].Revision);
            Assert.IsFalse(got.Items[1].Success, "a missing key");
            Assert.IsNull(got.Items[1].Value);
            Assert.AreEqual("1", got.Get(p + "/a").ValueAsString());
            Assert.AreEqual(a.Revision, got.Get(p + "/a").Revision);
            Assert.IsNull(got.Get(p + "/z"));
            Assert.GreaterOrEqual(got.Revision, c.Revision, "read at one revision, after both writes");

            var later = await _client.SetKeyValue(p + "/b", "2");
            var again = await _client.GetManyKeyValues(new List<string> { p + "/a", p + "/b" });
            Assert.GreaterOrEqual(again.Revision, later.Revision);
            Assert.IsTrue(again.Items.All(kv => kv.Success));

            // Ephemeral keys are their own key space.
            await _client.SetKeyValue(p + "/e", "eph", 20000, KeyValueFlags.Set, KeyValueDurability.Ephemeral);
            var eph = await _client.GetManyKeyValues(new[] { p + "/e", p + "/a" }, KeyValueDurability.Ephemeral);
            Assert.IsTrue(eph.Items[0].Success);
            Assert.AreEqual(KeyValueDurability.Ephemeral, eph.Items[0].Durability);
            Assert.IsFalse(eph.Items[1].Success);
        }

        [Test]
        public async Task SetManyWritesEveryKeyAtOneRevision()
        {
            string p = Cluster.Unique("setmany");
            var items = new Dictionary<string, string> { { p + "/x", "1" }, { p + "/y", "2" }, { p + "/z", "3" } };
            long revision = await _client.SetManyKeyValues(items);
            Assert.Greater(revision, 0);
            var got = await _client.GetManyKeyValues(items.Keys);
            foreach (var kv in got.Items)
            {
                Assert.IsTrue(kv.Success, kv.Key);
                Assert.AreEqual(revision, kv.Revision, "every key written by one entry: " + kv.Key);
                Assert.AreEqual(items[kv.Key], kv.ValueAsString());
            }

            long bytesRevision = await _client.SetManyKeyValues(new[]
            {
                new KeyValuePair<string, byte[]>(p + "/x", new byte[] { 1, 2 }),
                new KeyValuePair<string, byte[]>(p + "/w", new byte[0]),
            });
            Assert.Greater(bytesRevision, revision);
            Assert.AreEqual(new byte[] { 1, 2 }, (await _client.GetKeyValue(p + "/x")).Value);

            // All or nothing: a batch with one bad key writes none of them.
            var bad = new Dictionary<string, string> { { p + "/n1", "1" }, { new string('k', 5000), "2" } };
            AssertInvalid(() => _client.SetManyKeyValues(bad), "a key too long");
            Assert.IsFalse((await _client.GetKeyValue(p + "/n1")).Success, "nothing was written");

            var tooMany = Enumerable.Range(0, 129).ToDictionary(i => p + "/many/" + i, i => "v");
            AssertInvalid(() => _client.SetManyKeyValues(tooMany), "129 items");
            Assert.AreEqual(0, (await _client.ScanAllByPrefix(p + "/many/")).Count, "nothing was written");
            Assert.Throws<ArgumentNullException>(() => _client.SetManyKeyValues(
                new[] { new KeyValuePair<string, byte[]>(p + "/null", null) }).GetAwaiter().GetResult());
        }

        [Test]
        public async Task DeleteManyCountsTheKeysThatExisted()
        {
            string p = Cluster.Unique("delmany");
            await _client.SetManyKeyValues(new Dictionary<string, string> { { p + "/a", "1" }, { p + "/b", "2" } });
            int existed = await _client.DeleteManyKeyValues(new[] { p + "/a", p + "/b", p + "/c" });
            Assert.AreEqual(2, existed);
            var got = await _client.GetManyKeyValues(new[] { p + "/a", p + "/b", p + "/c" });
            Assert.IsFalse(got.Items.Any(kv => kv.Success), "every key is gone");
            Assert.AreEqual(0, await _client.DeleteManyKeyValues(new[] { p + "/a" }));
            Assert.Throws<ArgumentOutOfRangeException>(() =>
                _client.DeleteManyKeyValues(new[] { p + "/a" }, KeyValueDurability.Ephemeral).GetAwaiter().GetResult());
        }

        [Test]
        public async Task RangeScansAreHalfOpenAndPaged()
        {
            string p = Cluster.Unique("range");
            var items = new Dictionary<string, string>();
            for (int i = 0; i < 25; i++) items[p + "/k" + i.ToString("00")] = "v" + i;
            items[p + "/j"] = "before";
            items[p + "/l"] = "after";
            await _client.SetManyKeyValues(items);

            // [k05, k20) in pages of 4: k05..k19, 15 keys in 4 pages.
            var keys = new List<string>();
            byte[] token = null;
            int pages = 0;
            do
            {
                var page = await _client.GetByRange(p + "/k05", p + "/k20", 4, token);
                Assert.LessOrEqual(page.Items.Count, 4);
                Assert.Greater(page.Revision, 0);
                keys.AddRange(page.Items.Select(kv => kv.Key));
                token = page.NextPageToken;
                pages++;
            } while (token != null);
            var expected = Enumerable.Range(5, 15).Select(i => p + "/k" + i.ToString("00")).ToList();
            Assert.AreEqual(expected, keys, "start included, end left out, in byte order");
            Assert.GreaterOrEqual(pages, 4);

            var scanned = await All(_client.ScanByRange(p + "/k05", p + "/k20", 4));
            Assert.AreEqual(expected, scanned.Select(kv => kv.Key).ToList());
            Assert.AreEqual("v5", scanned[0].ValueAsString());

            var keysOnly = await _client.GetByRange(p + "/k", p + "/k03", 0, null, true);
            Assert.AreEqual(3, keysOnly.Items.Count);
            Assert.IsTrue(keysOnly.Items.All(kv => kv.Value == null || kv.Value.Length == 0), "keys only");

            // An open end: to the last key (the first keys after k20 are this test's).
            var e = _client.ScanByRange(p + "/k20", null, 2).GetAsyncEnumerator();
            var open = new List<string>();
            while (open.Count < 6 && await e.MoveNextAsync()) open.Add(e.Current.Key);
            Assert.AreEqual(new[] { p + "/k20", p + "/k21", p + "/k22", p + "/k23", p + "/k24", p + "/l" }, open);

            AssertInvalid(() => _client.GetByRange(p + "/k20", p + "/k05"), "an end before the start");
        }

        [Test]
        public void TooManyKeysIsATypedError()
        {
            string p = Cluster.Unique("toomany");
            AssertInvalid(() => _client.GetManyKeyValues(Enumerable.Range(0, 1001).Select(i => p + "/" + i)), "1,001 keys");
            AssertInvalid(() => _client.GetManyKeyValues(new string[0]), "no keys");
            AssertInvalid(() => _client.DeleteManyKeyValues(Enumerable.Range(0, 129).Select(i => p + "/" + i)), "129 deletes");
            Assert.Throws<ArgumentNullException>(() => _client.GetManyKeyValues(null).GetAwaiter().GetResult());
        }

        [Test]
        public async Task GetManyOfAThousandKeys()
        {
            string p = Cluster.Unique("thousand");
            var keys = Enumerable.Range(0, 1000).Select(i => p + "/" + i).ToList();
            await _client.SetManyKeyValues(keys.Take(100).ToDictionary(k => k, k => "v"));
            var got = await _client.GetManyKeyValues(keys);
            Assert.AreEqual(1000, got.Items.Count);
            Assert.AreEqual(100, got.Items.Count(kv => kv.Success));
        }
    }
}
