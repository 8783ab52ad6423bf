// Runs the four workflows against a cluster and checks what they promise:
//   mono Samples.exe 127.0.0.1:2070,127.0.0.1:2170,127.0.0.1:2270
using System;
using System.IO;
using System.Linq;
using System.Threading.Tasks;
using Kahuna.Client;

namespace Kahuna.Samples
{
    public static class Program
    {
        public static int Main(string[] args)
        {
            string[] endpoints = (args.Length > 0 ? args[0] : "127.0.0.1:2070").Split(',');
            try
            {
                return Run(endpoints).GetAwaiter().GetResult();
            }
            catch (Exception e)
            {
                Console.WriteLine("samples: FAILED: " + e);
                return 1;
            }
        }

        private static void Expect(bool ok, string what)
        {
            Console.WriteLine((ok ? "ok   " : "FAIL ") + what);
            if (!ok) throw new Exception("sample check failed: " + what);
        }

        /// <summary>Runs Kahuna's own first example (SeedExample.cs) and checks what it prints.</summary>
        private static async Task Seed(string[] endpoints, string run)
        {
            var client = SeedExample.Connect(endpoints[0], endpoints[1 % endpoints.Length], endpoints[2 % endpoints.Length]);
            try
            {
                string user = "user-" + run;
                Expect(await Prints(() => SeedExample.UpdateBalance(client, user)) == "Lock acquired!",
                    "seed example: the lock is acquired");
                Expect(await client.GetLockInfo("balance-" + user) == null, "seed example: released when the method returns");

                var holder = await client.GetOrCreateLock("balance-" + user, TimeSpan.FromSeconds(10));
                try
                {
                    Expect(await Prints(() => SeedExample.UpdateBalance(client, user)) == "Someone else has the lock!",
                        "seed example: a held lock is not acquired");
                    var waiting = Prints(() => SeedExample.UpdateBalanceWithRetries(client, user));
                    await Task.Delay(300);
                    await holder.DisposeAsync();
                    Expect(await waiting == "Lock acquired!", "seed example: retries acquire it once released");
                }
                finally
                {
                    await holder.DisposeAsync();
                }
            }
            finally
            {
                await client.DisposeAsync();
            }
        }

        /// <summary>What <paramref name="f"/> writes to the console, trimmed.</summary>
        private static async Task<string> Prints(Func<Task> f)
        {
            var old = Console.Out;
            var captured = new StringWriter();
            Console.SetOut(captured);
            try
            {
                await f();
            }
            finally
            {
                Console.SetOut(old);
            }
            return captured.ToString().Trim();
        }

        private static async Task<int> Run(string[] endpoints)
        {
            var client = new KahunaClient(endpoints);
            try
            {
                string run = Guid.NewGuid().ToString("N");

                await Seed(endpoints, run);

                var limiter = new RateLimiter(client, "api-" + run, 5);
                var permits = await Task.WhenAll(Enumerable.Range(0, 12).Select(i => limiter.TryAcquire("user-1")));
                int granted = permits.Count(p => p);
                Expect(granted == 5, "rate limiting: 5 of 12 concurrent requests get a permit (" + granted + ")");

                long t1 = await LeaderJob.RunOnce(client, "report-" + run, "worker-a");
                long t2 = await LeaderJob.RunOnce(client, "report-" + run, "worker-b");
                Expect(t1 > 0 && t2 > t1, "leader-owned job: each run holds the lock with a higher fencing token");
                var stale = await client.CreateTransaction().FencedBy("jobs/report-" + run, t1)
                    .ThenSet("jobs/report-" + run + "/state", "stale").Commit().ContinueWith(t => t);
                Expect(stale.IsFaulted && ((KahunaException)stale.Exception.InnerException).Code == KahunaErrorCode.Fenced,
                    "leader-owned job: a write fenced with an old token is refused");

                var first = await AllocateIds.ForBatch(client, run, 100);
                var retry = await AllocateIds.ForBatch(client, run, 100);
                var other = await AllocateIds.ForBatch(client, run + "-2", 100);
                Expect(first.Start == retry.Start && retry.Replayed, "idempotent allocation: a retry gets the same range");
                Expect(other.Start > first.End || other.End < first.Start, "idempotent allocation: ranges never overlap");

                string a = "accounts/" + run + "/a", b = "accounts/" + run + "/b";
                await client.SetKeyValue(a, "100");
                await client.SetKeyValue(b, "0");
                var moves = await Task.WhenAll(Enumerable.Range(0, 8).Select(i => Transfer.Move(client, a, b, 10)));
                long left = (await client.GetKeyValue(a)).ValueAsLong(), right = (await client.GetKeyValue(b)).ValueAsLong();
                Expect(moves.All(m => m) && left == 20 && right == 80, "transactional compare-and-set: 8 concurrent transfers, no lost update");
                Expect(!await Transfer.Move(client, a, b, 50), "transactional compare-and-set: short funds are refused");
            }
            finally
            {
                await client.DisposeAsync();
            }
            Console.WriteLine("samples: the seed's example and 4 workflows passed");
            return 0;
        }
    }
}
