// The conformance runner of the C# SDK: every scenario in tests/conformance/scenarios (the
// format is tests/conformance/README.md) run step by step through Kahuna.Client's public API
// against the 3-node test cluster started by dotnet/test.sh, one NUnit test case per file.
// An unknown operation, argument, expected field or error kind fails the scenario (never a
// skip), and an empty or missing scenario directory fails ScenarioDirectoryHasScenarios.
// Mono mcs C# subset; JSON read with System.Web.Extensions' JavaScriptSerializer.
using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.RegularExpressions;
using System.Threading.Tasks;
using System.Web.Script.Serialization;
using NUnit.Framework;
using Kahuna.Client;

namespace Kahuna.Client.Tests
{
    [TestFixture]
    public class ConformanceTests
    {
        private KahunaClient _client;

        /// <summary>The scenario directory: KAHUNA_CONFORMANCE_SCENARIOS, else the one of the
        /// checkout whose dotnet/tests/cluster.sh test.sh runs (KAHUNA_CLUSTER_SCRIPT).</summary>
        private static string ScenarioDir()
        {
            string dir = Environment.GetEnvironmentVariable("KAHUNA_CONFORMANCE_SCENARIOS");
            if (!string.IsNullOrEmpty(dir)) return dir;
            string script = Environment.GetEnvironmentVariable("KAHUNA_CLUSTER_SCRIPT") ?? "";
            return Path.GetFullPath(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(script)), "..", "..",
                "tests", "conformance", "scenarios"));
        }

        private static string[] ScenarioFiles()
        {
            string dir = ScenarioDir();
            if (!Directory.Exists(dir)) return new string[0];
            return Directory.GetFiles(dir, "*.json").OrderBy(f => f, StringComparer.Ordinal).ToArray();
        }

        /// <summary>One test case per file, read when the tests are loaded (not compiled in).</summary>
        public static IEnumerable<TestCaseData> Scenarios()
        {
            foreach (var f in ScenarioFiles())
                yield return new TestCaseData(f).SetName("Scenario_" + Path.GetFileNameWithoutExtension(f));
        }

        [TestFixtureSetUp]
        public void SetUp()
        {
            _client = Cluster.Client();
            // An earlier fixture kills members and moves the leadership: wait until writes are
            // accepted and the new leader's ephemeral grace period is over, so a scenario sees
            // the cluster's rules and not the tail of a failover.
            Cluster.Healthy(_client).GetAwaiter().GetResult();
            ParityTests.EphemeralLocksGranted(_client).GetAwaiter().GetResult();
        }

        [TestFixtureTearDown]
        public void TearDown()
        {
            _client.Dispose();
        }

        [Test]
        public void ScenarioDirectoryHasScenarios()
        {
            string dir = ScenarioDir();
            Assert.IsTrue(Directory.Exists(dir), "conformance scenario directory " + dir + " does not exist");
            Assert.IsNotEmpty(ScenarioFiles(), "no *.json scenario in " + dir);
        }

        [TestCaseSource("Scenarios")]
        public void Scenario(string path)
        {
            var run = new ScenarioRun(_client, path);
            string failure = run.Execute().GetAwaiter().GetResult();
            if (failure != null) Assert.Fail(failure);
        }

        [Test]
        public void RunnerRejectsUnknownOpsArgumentsAndMismatches()
        {
            // The runner's own checks, so a scenario it cannot run is never counted as passed.
            StringAssert.Contains("unknown op \"frobnicate\"", RunInline(@"[{""op"": ""frobnicate""}]"));
            StringAssert.Contains("unknown argument \"colour\"",
                RunInline(@"[{""op"": ""get"", ""key"": ""{p}/a"", ""colour"": ""red""}]"));
            StringAssert.Contains("unknown argument \"bogus\"",
                RunInline(@"[{""op"": ""set"", ""key"": ""{p}/a"", ""value"": ""1"", ""condition"": {""bogus"": 1}}]"));
            StringAssert.Contains("unknown result field \"colour\"",
                RunInline(@"[{""op"": ""exists"", ""key"": ""{p}/a"", ""expect"": {""colour"": 1}}]"));
            StringAssert.Contains("unknown error kind \"NOT_A_KIND\"",
                RunInline(@"[{""op"": ""get"", ""key"": """", ""expect"": {""error"": ""NOT_A_KIND""}}]"));
            StringAssert.Contains("step 1 (get)",
                RunInline(@"[{""op"": ""set"", ""key"": ""{p}/a"", ""value"": ""1""},
                             {""op"": ""get"", ""key"": ""{p}/a"", ""expect"": {""value"": ""2""}}]"));
            StringAssert.Contains("expected error FENCED",
                RunInline(@"[{""op"": ""set"", ""key"": ""{p}/a"", ""value"": ""1"", ""expect"": {""error"": ""FENCED""}}]"));
            StringAssert.Contains("INVALID_ARGUMENT",
                RunInline(@"[{""op"": ""set"", ""key"": """", ""value"": ""1"", ""expect"": {""succeeded"": true}}]"));
            StringAssert.Contains("undefined variable ${nope}",
                RunInline(@"[{""op"": ""get"", ""key"": ""${nope}""}]"));
            StringAssert.Contains("no steps", RunInline("[]"));
            Assert.IsNull(RunInline(@"[{""op"": ""set"", ""key"": ""{p}/a"", ""value"": {""repeat"": ""ab"", ""times"": 3},
                ""save"": {""r"": ""revision""}},
                {""op"": ""get"", ""key"": ""{p}/a"", ""expect"": {""value"": ""ababab"", ""revision"": ""${r}"",
                ""create_revision"": {""gte"": ""${r}""}, ""version"": {""gt"": 0}}}]"));
        }

        private string RunInline(string steps)
        {
            string file = Path.Combine(Path.GetTempPath(), "kahuna-conformance-" + Guid.NewGuid().ToString("N") + ".json");
            File.WriteAllText(file, @"{""name"": ""inline"", ""steps"": " + steps + "}");
            try
            {
                return new ScenarioRun(_client, file).Execute().GetAwaiter().GetResult();
            }
            finally
            {
                File.Delete(file);
            }
        }
    }

    /// <summary>A scenario the runner cannot execute as written (an unknown op, argument or
    /// field, a malformed value): a failure of the scenario, never a skip.</summary>
    internal sealed class ScenarioError : Exception
    {
        internal ScenarioError(string message) : base(message) { }
    }

    /// <summary>A call of the SDK that failed, with the catalogue kind the SDK gave it.</summary>
    internal sealed class SdkFailure : Exception
    {
        internal SdkFailure(KahunaErrorCode code, string message, Exception inner) : base(message, inner) { Code = code; }
        internal KahunaErrorCode Code { get; }
    }

    /// <summary>One execution of one scenario file.</summary>
    internal sealed class ScenarioRun
    {
        // Arguments each op takes; "op", "expect" and "save" are allowed on every step.
        private static readonly Dictionary<string, string[]> OpArgs = new Dictionary<string, string[]>
        {
            { "set", new[] { "key", "value", "ttl_ms", "durability", "condition", "fence" } },
            { "get", new[] { "key", "durability" } },
            { "delete", new[] { "key", "durability", "condition" } },
            { "exists", new[] { "key", "durability" } },
            { "extend", new[] { "key", "ttl_ms", "durability" } },
            { "scan", new[] { "prefix", "limit" } },
            { "history", new[] { "key" } },
            { "txn", new[] { "compare", "then", "else" } },
            { "lock", new[] { "name", "ttl_ms", "durability", "as" } },
            { "extend_lock", new[] { "handle", "ttl_ms" } },
            { "unlock", new[] { "handle" } },
            { "lock_info", new[] { "name", "durability" } },
            { "seq_next", new[] { "name", "count", "idempotency_key" } },
            { "seq_peek", new[] { "name" } },
            { "sleep", new[] { "ms" } },
        };

        // Result fields each op gives (for `expect` and `save`).
        private static readonly Dictionary<string, string[]> OpResults = new Dictionary<string, string[]>
        {
            { "set", new[] { "succeeded", "revision", "version" } },
            { "get", new[] { "found", "value", "version", "revision", "create_revision" } },
            { "delete", new[] { "deleted" } },
            { "exists", new[] { "exists" } },
            { "extend", new[] { "extended" } },
            { "scan", new[] { "keys", "values" } },
            { "history", new[] { "values" } },
            { "txn", new[] { "succeeded", "gets" } },
            { "lock", new[] { "acquired", "token" } },
            { "extend_lock", new string[0] },
            { "unlock", new string[0] },
            { "lock_info", new[] { "held", "token" } },
            { "seq_next", new[] { "first", "count" } },
            { "seq_peek", new[] { "next" } },
            { "sleep", new string[0] },
        };

        private static readonly Regex Variable = new Regex(@"^\$\{([A-Za-z0-9_]+)\}$");

        private readonly KahunaClient _client;
        private readonly string _path;
        private readonly Dictionary<string, object> _vars = new Dictionary<string, object>(StringComparer.Ordinal);
        private readonly Dictionary<string, KahunaLock> _handles = new Dictionary<string, KahunaLock>(StringComparer.Ordinal);
        private readonly List<KahunaLock> _locks = new List<KahunaLock>();
        private string _prefix;

        internal ScenarioRun(KahunaClient client, string path)
        {
            _client = client;
            _path = path;
        }

        /// <summary>Runs every step in order; null when all passed, else what failed and where.</summary>
        internal async Task<string> Execute()
        {
            string name = Path.GetFileNameWithoutExtension(_path);
            object[] steps;
            try
            {
                var doc = new JavaScriptSerializer { MaxJsonLength = int.MaxValue }.DeserializeObject(File.ReadAllText(_path))
                    as Dictionary<string, object>;
                if (doc == null) throw new ScenarioError("the file is not a JSON object");
                foreach (var k in doc.Keys)
                    if (k != "name" && k != "description" && k != "steps") throw new ScenarioError("unknown scenario key \"" + k + "\"");
                object n;
                if (doc.TryGetValue("name", out n))
                {
                    name = n as string;
                    if (string.IsNullOrEmpty(name)) throw new ScenarioError("\"name\" must be a non-empty string");
                }
                object s;
                steps = doc.TryGetValue("steps", out s) ? s as object[] : null;
                if (steps == null || steps.Length == 0) throw new ScenarioError("no steps");
            }
            catch (Exception e) when (e is ScenarioError || e is ArgumentException || e is InvalidOperationException)
            {
                return "scenario file " + _path + ": " + e.Message;
            }
            _prefix = "conf/csharp/" + Guid.NewGuid().ToString("N") + "/" + name;
            try
            {
                for (int i = 0; i < steps.Length; i++)
                {
                    string op = "?";
                    try
                    {
                        var step = steps[i] as Dictionary<string, object>;
                        if (step == null) throw new ScenarioError("a step must be a JSON object");
                        object o;
                        op = step.TryGetValue("op", out o) ? o as string ?? "?" : "?";
                        await Step(step);
                    }
                    catch (ScenarioError e)
                    {
                        return "scenario " + name + " (" + _path + ") step " + i + " (" + op + "): " + e.Message
                            + "\n  step: " + Show(steps[i]);
                    }
                }
                return null;
            }
            finally
            {
                foreach (var l in _locks)
                {
                    try { await l.DisposeAsync(); }
                    catch (Exception) { /* its lease runs out on its own */ }
                }
            }
        }

        private async Task Step(Dictionary<string, object> raw)
        {
            string op = raw.ContainsKey("op") ? raw["op"] as string : null;
            if (op == null) throw new ScenarioError("a step needs \"op\" (a string)");
            string[] allowed;
            if (!OpArgs.TryGetValue(op, out allowed)) throw new ScenarioError("unknown op \"" + op + "\"");
            foreach (var k in raw.Keys)
                if (k != "op" && k != "expect" && k != "save" && Array.IndexOf(allowed, k) < 0)
                    throw new ScenarioError("unknown argument \"" + k + "\" of " + op);

            // Arguments and expectations with {p}, ${var} and repeats resolved; "save" names fields.
            var args = new Dictionary<string, object>(StringComparer.Ordinal);
            foreach (var kv in raw)
                if (kv.Key != "op" && kv.Key != "expect" && kv.Key != "save") args[kv.Key] = Resolve(kv.Value);
            Dictionary<string, object> expect = null;
            if (raw.ContainsKey("expect"))
            {
                expect = Resolve(raw["expect"]) as Dictionary<string, object>;
                if (expect == null) throw new ScenarioError("\"expect\" must be an object");
            }
            Dictionary<string, object> save = null;
            if (raw.ContainsKey("save"))
            {
                save = raw["save"] as Dictionary<string, object>;
                if (save == null) throw new ScenarioError("\"save\" must be an object");
            }

            string expectedKind = null;
            KahunaErrorCode expectedCode = 0;
            if (expect != null && expect.ContainsKey("error"))
            {
                if (expect.Count != 1) throw new ScenarioError("an \"error\" expectation names no result fields");
                expectedKind = expect["error"] as string;
                if (expectedKind == null || !TryKind(expectedKind, out expectedCode))
                    throw new ScenarioError("unknown error kind \"" + expect["error"] + "\"");
            }
            else if (expect != null)
            {
                foreach (var k in expect.Keys)
                    if (Array.IndexOf(OpResults[op], k) < 0) throw new ScenarioError("unknown result field \"" + k + "\" of " + op);
            }
            if (save != null)
                foreach (var kv in save)
                    if (!(kv.Value is string) || Array.IndexOf(OpResults[op], (string)kv.Value) < 0)
                        throw new ScenarioError("save " + kv.Key + ": unknown result field " + Show(kv.Value) + " of " + op);

            Dictionary<string, object> result;
            try
            {
                result = await Perform(op, new Args(op, args));
            }
            catch (SdkFailure f)
            {
                string kind = KindName(f.Code);
                if (expectedKind == null)
                    throw new ScenarioError("failed with " + kind + " (" + f.InnerException.GetType().Name + ": "
                        + f.InnerException.Message + ")" + (expect == null ? "" : ", expected " + Show(expect)));
                if (f.Code != expectedCode)
                    throw new ScenarioError("expected error " + expectedKind + ", got " + kind + " ("
                        + f.InnerException.GetType().Name + ": " + f.InnerException.Message + ")");
                return;
            }
            if (expectedKind != null)
                throw new ScenarioError("expected error " + expectedKind + ", but it succeeded with " + Show(result));
            if (expect != null)
                foreach (var kv in expect)
                {
                    object actual;
                    result.TryGetValue(kv.Key, out actual);
                    if (!Matches(kv.Value, actual))
                        throw new ScenarioError(kv.Key + ": expected " + Show(kv.Value) + ", got " + Show(actual)
                            + " (whole result " + Show(result) + ")");
                }
            if (save != null)
                foreach (var kv in save)
                {
                    object v;
                    if (!result.TryGetValue((string)kv.Value, out v) || v == null)
                        throw new ScenarioError("save " + kv.Key + ": the result has no " + kv.Value + " (" + Show(result) + ")");
                    _vars[kv.Key] = v;
                }
        }

        // ---- the operations, through the SDK's public API ---------------------------------------

        private async Task<Dictionary<string, object>> Perform(string op, Args a)
        {
            var r = new Dictionary<string, object>(StringComparer.Ordinal);
            if (op == "set")
            {
                string key = a.Str("key"), value = a.Str("value");
                TimeSpan ttl = a.Millis("ttl_ms");
                var durability = a.KvTier();
                var condition = a.Obj("condition");
                var fence = a.Obj("fence");
                KahunaKeyValue kv;
                if (fence != null)
                {
                    var f = new Args("fence", fence, "name", "token");
                    string lockName = f.Str("name");
                    long token = f.Long("token");
                    // The SDK's fenced set is persistent and unconditional; anything else cannot be
                    // said through it, and that fails the scenario rather than being approximated.
                    if (condition != null) throw new ScenarioError("the C# SDK has no fenced set with a condition");
                    if (durability != KeyValueDurability.Persistent)
                        throw new ScenarioError("the C# SDK has no fenced set of an ephemeral key");
                    byte[] bytes = Encoding.UTF8.GetBytes(value);
                    kv = await Sdk(() => _client.SetKeyValueFenced(key, bytes, lockName, token, ttl));
                }
                else if (condition == null)
                    kv = await Sdk(() => _client.SetKeyValue(key, value, ttl, KeyValueFlags.Set, durability));
                else
                {
                    var c = new Args("condition", condition, "not_exists", "exists", "value", "revision");
                    string which = c.OnlyKey();
                    if (which == "not_exists" || which == "exists")
                    {
                        if (!c.Bool(which)) throw new ScenarioError("condition " + which + " must be true");
                        var flags = which == "exists" ? KeyValueFlags.SetIfExists : KeyValueFlags.SetIfNotExists;
                        kv = await Sdk(() => _client.SetKeyValue(key, value, ttl, flags, durability));
                    }
                    else if (which == "value")
                    {
                        string compare = c.Str("value");
                        kv = await Sdk(() => _client.TryCompareValueAndSetKeyValue(key, value, compare, ttl, durability));
                    }
                    else
                    {
                        long revision = c.Long("revision");
                        kv = await Sdk(() => _client.TryCompareRevisionAndSetKeyValue(key, value, revision, ttl, durability));
                    }
                }
                r["succeeded"] = kv.Success;
                if (kv.Success)
                {
                    r["revision"] = kv.Revision;
                    r["version"] = kv.Version;
                }
            }
            else if (op == "get")
            {
                string key = a.Str("key");
                var durability = a.KvTier();
                var kv = await Sdk(() => _client.GetKeyValue(key, durability));
                r["found"] = kv.Success;
                if (kv.Success)
                {
                    r["value"] = kv.ValueAsString();
                    r["version"] = kv.Version;
                    r["revision"] = kv.Revision;
                    r["create_revision"] = kv.CreateRevision;
                }
            }
            else if (op == "delete")
            {
                string key = a.Str("key");
                var durability = a.KvTier();
                var condition = a.Obj("condition");
                if (condition == null)
                {
                    var kv = await Sdk(() => _client.DeleteKeyValue(key, durability));
                    r["deleted"] = kv.Success;
                }
                else
                {
                    // KahunaClient has no conditional delete (the C ABI's kahuna_kv_delete takes one,
                    // the C# layer does not expose it); a transaction is the public way to say it:
                    // compare, then delete, atomically. Transactions are persistent only.
                    if (durability != KeyValueDurability.Persistent)
                        throw new ScenarioError("the C# SDK has no conditional delete of an ephemeral key");
                    var c = new Args("condition", condition, "value", "revision");
                    var txn = _client.CreateTransaction();
                    if (c.OnlyKey() == "value") txn.IfValue(key, c.Str("value"));
                    else txn.IfRevision(key, c.Long("revision"));
                    txn.ThenDelete(key);
                    var t = await Sdk(() => txn.Commit());
                    if (t.Succeeded && t.Results.Count != 1)
                        throw new ScenarioError("a transaction of one delete gave " + t.Results.Count + " results");
                    r["deleted"] = t.Succeeded && t.Results[0].Success;
                }
            }
            else if (op == "exists")
            {
                string key = a.Str("key");
                var durability = a.KvTier();
                var kv = await Sdk(() => _client.ExistsKeyValue(key, durability));
                r["exists"] = kv.Success;
            }
            else if (op == "extend")
            {
                string key = a.Str("key");
                TimeSpan ttl = a.Millis("ttl_ms");
                var durability = a.KvTier();
                var kv = await Sdk(() => _client.ExtendKeyValue(key, ttl, durability));
                r["extended"] = kv.Success;
            }
            else if (op == "scan")
            {
                string prefix = a.Str("prefix");
                long limit = a.Long("limit", 0);
                if (limit < 0 || limit > int.MaxValue) throw new ScenarioError("limit " + limit + " is not a page size");
                var keys = new List<object>();
                var values = new List<object>();
                byte[] token = null;
                int pages = 0;
                do
                {
                    if (++pages > 100000) throw new ScenarioError("more than 100000 pages: the scan does not end");
                    byte[] current = token;
                    var page = await Sdk(() => _client.ScanByPrefix(prefix, (int)limit, current));
                    foreach (var kv in page.Items)
                    {
                        keys.Add(kv.Key);
                        values.Add(kv.ValueAsString());
                    }
                    token = page.NextPageToken;
                } while (token != null);
                r["keys"] = keys;
                r["values"] = values;
            }
            else if (op == "history")
            {
                string key = a.Str("key");
                var h = await Sdk(() => _client.GetKeyValueHistory(key));
                var values = new List<object>();
                foreach (var e in h.Events)
                    if (e.Kind == KahunaKeyEventKind.Put) values.Add(e.KeyValue.ValueAsString());
                r["values"] = values;
            }
            else if (op == "txn")
            {
                var txn = _client.CreateTransaction();
                foreach (var item in a.List("compare"))
                {
                    var c = new Args("compare", item as Dictionary<string, object>, "key", "value", "version", "revision");
                    string key = c.Str("key");
                    string which = c.OnlyKeyBut("key");
                    if (which == "value") txn.IfValue(key, c.Str("value"));
                    else if (which == "version") txn.IfVersion(key, c.Long("version"));
                    else txn.IfRevision(key, c.Long("revision"));
                }
                var thenGets = Branch(txn, a.List("then"), true);
                var elseGets = Branch(txn, a.List("else"), false);
                var t = await Sdk(() => txn.Commit());
                var gets = t.Succeeded ? thenGets : elseGets;
                int ops = t.Succeeded ? a.List("then").Length : a.List("else").Length;
                if (t.Results.Count != ops)
                    throw new ScenarioError("the SDK gave " + t.Results.Count + " results for a branch of " + ops + " operations");
                var read = new List<object>();
                foreach (int i in gets) read.Add(t.Results[i].Success ? t.Results[i].ValueAsString() : null);
                r["succeeded"] = t.Succeeded;
                r["gets"] = read;
            }
            else if (op == "lock")
            {
                string name = a.Str("name");
                TimeSpan ttl = a.Millis("ttl_ms");
                var durability = a.LockTier();
                string handle = a.OptStr("as");
                if (handle != null && _handles.ContainsKey(handle)) throw new ScenarioError("handle " + handle + " is already taken");
                // No owner given: the SDK makes one unique to this attempt, so each step is a new owner;
                // no wait: one attempt.
                var l = await Sdk(() => _client.GetOrCreateLock(name, ttl, durability));
                _locks.Add(l);
                if (handle != null) _handles[handle] = l;
                r["acquired"] = l.IsAcquired;
                if (l.IsAcquired) r["token"] = l.FencingToken;
            }
            else if (op == "extend_lock")
            {
                var l = a.Handle(_handles);
                TimeSpan ttl = a.Millis("ttl_ms");
                var extended = await Sdk(() => l.TryExtend(ttl));
                // TryExtend answers a lease that is gone (the SDK's LockNotHeld) with false.
                if (!extended.Item1) throw new SdkFailure(KahunaErrorCode.LockNotHeld, "TryExtend returned false", new Exception("not held"));
            }
            else if (op == "unlock")
            {
                var l = a.Handle(_handles);
                bool released = await Sdk(() => l.Release());
                // Release answers a lock it no longer held (expired, lost, released) with false.
                if (!released) throw new SdkFailure(KahunaErrorCode.LockNotHeld, "Release returned false", new Exception("not held"));
            }
            else if (op == "lock_info")
            {
                string name = a.Str("name");
                var durability = a.LockTier();
                var info = await Sdk(() => _client.GetLockInfo(name, durability));
                r["held"] = info != null;
                if (info != null) r["token"] = info.FencingToken;
            }
            else if (op == "seq_next")
            {
                string name = a.Str("name");
                long count = a.Long("count");
                string key = a.OptStr("idempotency_key");
                var range = await Sdk(() => _client.ReserveSequenceRange(name, count, key));
                r["first"] = range.Start;
                r["count"] = range.Count;
            }
            else if (op == "seq_peek")
            {
                string name = a.Str("name");
                r["next"] = await Sdk(() => _client.PeekSequence(name));
            }
            else if (op == "sleep")
            {
                long ms = a.Long("ms");
                if (ms < 0 || ms > int.MaxValue) throw new ScenarioError("ms " + ms + " is not a duration");
                await Task.Delay((int)ms);
            }
            else throw new ScenarioError("unknown op \"" + op + "\"");
            return r;
        }

        /// <summary>Adds a branch's operations; returns the indexes of its gets among its results.</summary>
        private static List<int> Branch(KahunaTransaction txn, object[] ops, bool then)
        {
            var gets = new List<int>();
            for (int i = 0; i < ops.Length; i++)
            {
                var o = new Args(then ? "then" : "else", ops[i] as Dictionary<string, object>, "set", "delete", "get");
                string which = o.OnlyKey();
                if (which == "set")
                {
                    var s = new Args("set", o.Obj("set"), "key", "value");
                    if (then) txn.ThenSet(s.Str("key"), s.Str("value"));
                    else txn.ElseSet(s.Str("key"), s.Str("value"));
                }
                else if (which == "delete")
                {
                    var d = new Args("delete", o.Obj("delete"), "key");
                    if (then) txn.ThenDelete(d.Str("key"));
                    else txn.ElseDelete(d.Str("key"));
                }
                else
                {
                    var g = new Args("get", o.Obj("get"), "key");
                    if (then) txn.ThenGet(g.Str("key"));
                    else txn.ElseGet(g.Str("key"));
                    gets.Add(i);
                }
            }
            return gets;
        }

        /// <summary>Calls the SDK, turning its typed errors into their catalogue kind: a
        /// <see cref="KahunaException"/>'s code, and an <see cref="ArgumentException"/> (the SDK's
        /// refusal of an argument it can judge before calling, such as a sequence count below 1)
        /// as INVALID_ARGUMENT. Only the call itself is inside, so the runner's own faults are not
        /// mistaken for the SDK's answers.</summary>
        private static async Task<T> Sdk<T>(Func<Task<T>> call)
        {
            try
            {
                return await call();
            }
            catch (KahunaException e)
            {
                throw new SdkFailure(e.Code, e.Message, e);
            }
            catch (ArgumentException e)
            {
                throw new SdkFailure(KahunaErrorCode.InvalidArgument, e.Message, e);
            }
        }

        // ---- error kinds: the catalogue's names (INVALID_ARGUMENT) and the generated enum's ------

        /// <summary>The enum is generated from the catalogue by turning NAME_PARTS into NameParts
        /// (bindings/ffi/build.rs); the same rule finds a catalogue name's member.</summary>
        private static bool TryKind(string name, out KahunaErrorCode code)
        {
            code = 0;
            if (!Regex.IsMatch(name, "^[A-Z]+(_[A-Z]+)*$")) return false;
            string pascal = string.Concat(name.Split('_').Select(w => w.Substring(0, 1) + w.Substring(1).ToLowerInvariant()));
            if (!Enum.IsDefined(typeof(KahunaErrorCode), pascal)) return false;
            code = (KahunaErrorCode)Enum.Parse(typeof(KahunaErrorCode), pascal);
            return true;
        }

        /// <summary>The catalogue name of a code, for messages (an alias such as Configuration
        /// shares its number, and so its kind, with Config).</summary>
        private static string KindName(KahunaErrorCode code) =>
            Regex.Replace(code.ToString(), "(?<=[a-z])([A-Z])", "_$1").ToUpperInvariant() + " (" + (int)code + ")";

        // ---- substitution and matching ---------------------------------------------------------

        private object Resolve(object v)
        {
            var s = v as string;
            if (s != null)
            {
                var m = Variable.Match(s);
                if (m.Success)
                {
                    object value;
                    if (!_vars.TryGetValue(m.Groups[1].Value, out value)) throw new ScenarioError("undefined variable " + s);
                    return value;
                }
                return s.Replace("{p}", _prefix);
            }
            var d = v as Dictionary<string, object>;
            if (d != null)
            {
                if (d.Count == 2 && d.ContainsKey("repeat") && d.ContainsKey("times"))
                {
                    var unit = Resolve(d["repeat"]) as string;
                    if (unit == null) throw new ScenarioError("\"repeat\" must be a string");
                    long times = Args.ToLong(Resolve(d["times"]), "times");
                    if (times < 0 || times > 100000000) throw new ScenarioError("\"times\" " + times + " is out of range");
                    var b = new StringBuilder(checked(unit.Length * (int)times));
                    for (long i = 0; i < times; i++) b.Append(unit);
                    return b.ToString();
                }
                var o = new Dictionary<string, object>(StringComparer.Ordinal);
                foreach (var kv in d) o[kv.Key] = Resolve(kv.Value);
                return o;
            }
            var a = v as object[];
            if (a != null) return a.Select(Resolve).ToArray();
            return v;
        }

        private static bool IsNumber(object v) => v is int || v is long || v is decimal || v is double;

        private static bool Matches(object expected, object actual)
        {
            if (expected == null) return actual == null;
            var d = expected as Dictionary<string, object>;
            if (d != null)
            {
                if (d.Count != 1 || !(d.ContainsKey("gt") || d.ContainsKey("gte")))
                    throw new ScenarioError("unknown matcher " + Show(expected) + " (only {\"gt\": N} and {\"gte\": N})");
                string which = d.Keys.First();
                if (!IsNumber(d[which])) throw new ScenarioError(which + " needs a number, not " + Show(d[which]));
                if (!IsNumber(actual)) return false;
                decimal bound = Convert.ToDecimal(d[which], CultureInfo.InvariantCulture);
                decimal value = Convert.ToDecimal(actual, CultureInfo.InvariantCulture);
                return which == "gt" ? value > bound : value >= bound;
            }
            var list = expected as object[];
            if (list != null)
            {
                var got = actual as IList;
                if (got == null || got.Count != list.Length) return false;
                for (int i = 0; i < list.Length; i++)
                    if (!Matches(list[i], got[i])) return false;
                return true;
            }
            if (IsNumber(expected))
                return IsNumber(actual) && Convert.ToDecimal(expected, CultureInfo.InvariantCulture)
                    == Convert.ToDecimal(actual, CultureInfo.InvariantCulture);
            if (expected is bool) return actual is bool && (bool)expected == (bool)actual;
            if (expected is string) return actual is string && string.Equals((string)expected, (string)actual, StringComparison.Ordinal);
            throw new ScenarioError("cannot compare with " + Show(expected));
        }

        /// <summary>A value as JSON, cut short (a scenario may carry a megabyte string).</summary>
        internal static string Show(object v)
        {
            string s;
            try
            {
                s = new JavaScriptSerializer { MaxJsonLength = int.MaxValue }.Serialize(v);
            }
            catch (Exception)
            {
                s = Convert.ToString(v, CultureInfo.InvariantCulture);
            }
            return s.Length > 2000 ? s.Substring(0, 2000) + "... (" + s.Length + " chars)" : s;
        }
    }

    /// <summary>The arguments of a step (or of a nested object), read by name and type.</summary>
    internal sealed class Args
    {
        private readonly string _what;
        private readonly Dictionary<string, object> _args;

        internal Args(string what, Dictionary<string, object> args, params string[] allowed)
        {
            if (args == null) throw new ScenarioError(what + " must be an object");
            _what = what;
            _args = args;
            if (allowed.Length > 0)
                foreach (var k in args.Keys)
                    if (Array.IndexOf(allowed, k) < 0) throw new ScenarioError("unknown argument \"" + k + "\" in " + what);
        }

        internal static long ToLong(object v, string name)
        {
            if (v is int) return (int)v;
            if (v is long) return (long)v;
            if (v is decimal && decimal.Truncate((decimal)v) == (decimal)v && (decimal)v >= long.MinValue && (decimal)v <= long.MaxValue)
                return (long)(decimal)v;
            throw new ScenarioError(name + " must be an integer, not " + ScenarioRun.Show(v));
        }

        private object Required(string name)
        {
            object v;
            if (!_args.TryGetValue(name, out v)) throw new ScenarioError(_what + " needs \"" + name + "\"");
            return v;
        }

        internal string Str(string name)
        {
            var s = Required(name) as string;
            if (s == null) throw new ScenarioError(_what + ": \"" + name + "\" must be a string");
            return s;
        }

        internal string OptStr(string name) => _args.ContainsKey(name) ? Str(name) : null;

        internal bool Bool(string name)
        {
            object v = Required(name);
            if (!(v is bool)) throw new ScenarioError(_what + ": \"" + name + "\" must be true or false");
            return (bool)v;
        }

        internal long Long(string name) => ToLong(Required(name), _what + " " + name);

        internal long Long(string name, long absent) => _args.ContainsKey(name) ? Long(name) : absent;

        /// <summary>Milliseconds as a TimeSpan, exactly (0 or absent: none).</summary>
        internal TimeSpan Millis(string name) => TimeSpan.FromTicks(checked(Long(name, 0) * TimeSpan.TicksPerMillisecond));

        internal Dictionary<string, object> Obj(string name)
        {
            if (!_args.ContainsKey(name)) return null;
            var d = _args[name] as Dictionary<string, object>;
            if (d == null) throw new ScenarioError(_what + ": \"" + name + "\" must be an object");
            return d;
        }

        internal object[] List(string name)
        {
            if (!_args.ContainsKey(name)) return new object[0];
            var a = _args[name] as object[];
            if (a == null) throw new ScenarioError(_what + ": \"" + name + "\" must be a list");
            return a;
        }

        /// <summary>The one key of an object that must have exactly one (a condition, a txn op).</summary>
        internal string OnlyKey()
        {
            if (_args.Count != 1) throw new ScenarioError(_what + " must have exactly one of its keys, not " + ScenarioRun.Show(_args));
            return _args.Keys.First();
        }

        internal string OnlyKeyBut(string fixedKey)
        {
            var rest = _args.Keys.Where(k => k != fixedKey).ToList();
            if (rest.Count != 1) throw new ScenarioError(_what + " must have exactly one key besides " + fixedKey + ": " + ScenarioRun.Show(_args));
            return rest[0];
        }

        private string Durability()
        {
            string d = OptStr("durability") ?? "persistent";
            if (d != "persistent" && d != "ephemeral")
                throw new ScenarioError("durability must be \"persistent\" or \"ephemeral\", not \"" + d + "\"");
            return d;
        }

        internal KeyValueDurability KvTier() =>
            Durability() == "ephemeral" ? KeyValueDurability.Ephemeral : KeyValueDurability.Persistent;

        internal LockDurability LockTier() =>
            Durability() == "ephemeral" ? LockDurability.Ephemeral : LockDurability.Persistent;

        internal KahunaLock Handle(Dictionary<string, KahunaLock> handles)
        {
            string h = Str("handle");
            KahunaLock l;
            if (!handles.TryGetValue(h, out l)) throw new ScenarioError("no lock handle \"" + h + "\" (a lock step's \"as\")");
            return l;
        }
    }
}
