// Smoke program for the .NET Core 3.1 runtime (and Mono): the main paths against a real
// cluster, then N sequential gets for the per-call cost. Args: ENDPOINTS [N].
using System;
using System.Diagnostics;
using System.Linq;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Tasks;
using Kahuna.Client;

public static class Smoke
{
    private static int s_passed, s_failed;

    public static int Main(string[] args)
    {
        try
        {
            return RunAsync(args).GetAwaiter().GetResult();
        }
        catch (Exception e)
        {
            Console.WriteLine("SMOKE FAIL: " + e);
            return 1;
        }
    }

    private static void Check(string name, bool ok)
    {
        Console.WriteLine((ok ? "ok   " : "FAIL ") + name);
        if (ok) s_passed++; else s_failed++;
    }

    private static async Task<int> RunAsync(string[] args)
    {
        Console.WriteLine("runtime: " + RuntimeInformation.FrameworkDescription);
        string[] endpoints = args[0].Split(',');
        int n = args.Length > 1 ? int.Parse(args[1]) : 2000;
        var client = new KahunaClient(endpoints);
        try
        {
            string key = "smoke/" + Guid.NewGuid().ToString("N");
            var set = await client.SetKeyValue(key, "v1");
            Check("set", set.Success && set.Revision > 0);
            Check("get", (await client.GetKeyValue(key)).ValueAsString() == "v1");
            Check("compare-and-set", (await client.TryCompareRevisionAndSetKeyValue(key, "v2", set.Revision)).Success);
            var txn = await client.CreateTransaction().IfValue(key, "v2").ThenSet(key, "v3").Commit();
            Check("transaction", txn.Succeeded);
            var r = await client.ReserveSequenceRange(key, 10, "k");
            var again = await client.ReserveSequenceRange(key, 10, "k");
            Check("sequence idempotency", r.Start == again.Start && again.Replayed);
            var l = await client.GetOrCreateLock(key, TimeSpan.FromSeconds(5));
            Check("lock", l.IsAcquired && l.FencingToken > 0);
            await l.DisposeAsync();
            Check("lock lost token fires on release", l.Lost.IsCancellationRequested);
            // The calls added for Kahuna 1.x parity, so their result layouts are checked on this runtime too.
            var status = await client.GetClusterStatus();
            Check("cluster status", status.Members.Count == endpoints.Length && status.LeaderId > 0
                && status.Members.Any(m => m.Id == status.LeaderId) && status.AppliedIndex > 0);
            // The replication fields are the leader's view, on every member entry alike.
            bool leaderView = status.MemberId == status.LeaderId;
            Check("member replication view", status.Members.All(m => m.HasLeaderView == leaderView
                && (!leaderView || (m.IsAnswering && m.MatchedIndex > 0 && m.Lag == status.LastLogIndex - m.MatchedIndex))));
            var members = await client.GetMembers();
            Check("cluster members", members.Count == endpoints.Length
                && members.All(m => m.Role == KahunaMemberRole.Voter && endpoints.Contains(m.ClientAddress)));
            var history = await client.GetKeyValueHistory(key);
            Check("key history", history.Events.Count == 3 && history.Events[2].KeyValue.ValueAsString() == "v3");
            var owned = await client.GetOrCreateLock(key + "/owned", "smoke-owner", TimeSpan.FromSeconds(5));
            var extended = await client.TryExtendLock(key + "/owned", "smoke-owner", TimeSpan.FromSeconds(5));
            Check("extend by owner", owned.IsAcquired && extended.Item1 && extended.Item2 == owned.FencingToken);
            Check("unlock by owner", await client.Unlock(key + "/owned", "smoke-owner"));
            owned.Dispose();
            Check("peek sequence", await client.PeekSequence(key) == r.End + 1);
            var limiter = new Kahuna.Client.RateLimiting.KahunaFixedWindowRateLimiter(client, key, 3, TimeSpan.FromHours(1));
            var decisions = await Task.WhenAll(Enumerable.Range(0, 8).Select(i => limiter.TryAcquire()));
            Check("rate limiter", decisions.Count(d => d.IsAllowed) == 3);
            var cts = new CancellationTokenSource();
            cts.Cancel();
            Check("cancelled token", client.GetKeyValue(key, KeyValueDurability.Persistent, cts.Token).IsCanceled);
            try
            {
                await client.SetKeyValue("", "x");
                Check("typed error", false);
            }
            catch (KahunaException e)
            {
                Check("typed error", e.Code == KahunaErrorCode.InvalidArgument);
            }
            var many = await Task.WhenAll(Enumerable.Range(0, 200).Select(i => client.GetKeyValue(key)));
            Check("200 concurrent gets", many.All(kv => kv.ValueAsString() == "v3"));
            GC.Collect();
            GC.WaitForPendingFinalizers();
            Check("no GCHandle left", KahunaClient.PendingNativeCalls == 0);

            for (int i = 0; i < 200; i++) await client.GetKeyValue(key);
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < n; i++) await client.GetKeyValue(key);
            double us = sw.Elapsed.TotalMilliseconds * 1000.0 / n;
            Console.WriteLine("csharp get: " + n + " calls, " + us.ToString("F1") + " us/call");
        }
        finally
        {
            await client.DisposeAsync();
        }
        Console.WriteLine("smoke: " + s_passed + " passed, " + s_failed + " failed");
        return s_failed == 0 && s_passed > 0 ? 0 : 1;
    }
}
