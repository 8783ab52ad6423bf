// Kahuna's own first example for .NET (the "single attempt" and "multiple attempts" lock
// examples of Kahuna.Client's documentation), kept as written there except for:
//   - host names: the example connects to `https://...:8082` members; the samples run against
//     a plain cluster, so the members here are its `http://` addresses, passed in by Program
//     (dotnet/tests/SeedTls.cs runs the same snippet over https:// against a TLS cluster);
//   - `await using KahunaLock myLock = ...;` is C# 8, which Mono's compiler (the only one on
//     the build machine) does not accept: it is spelled as the try/finally it stands for.
//     The real SDK compiles the `await using` form unchanged (KahunaLock is IAsyncDisposable);
//   - the top-level `var client = ...` statement is C# 9, so it sits in Connect.
using System;
using System.Threading.Tasks;
using Kahuna.Client;

namespace Kahuna.Samples
{
    public static class SeedExample
    {
        public static KahunaClient Connect(string host1, string host2, string host3)
        {
            // Create a Kahuna client (it can be a global instance)
            var client = new KahunaClient(new[] { "http://" + host1, "http://" + host2, "http://" + host3 });
            return client;
        }

        public static async Task UpdateBalance(KahunaClient client, string userId)
        {
            // try to lock on a resource using a keyName composed of a prefix and the user's id,
            // if acquired then automatically release the lock after 5 seconds (if not extended),
            // it will give up immediately if the lock is not available,
            // if the lock is acquired it will prevent the same user from changing the same data concurrently

            KahunaLock myLock = await client.GetOrCreateLock(
                "balance-" + userId,
                TimeSpan.FromSeconds(5)
            );
            try
            {
                if (myLock.IsAcquired)
                {
                    Console.WriteLine("Lock acquired!");

                    // implement exclusive logic here
                }
                else
                {
                    Console.WriteLine("Someone else has the lock!");
                }
            }
            finally
            {
                // myLock is automatically released after leaving the method
                await myLock.DisposeAsync();
            }
        }

        public static async Task UpdateBalanceWithRetries(KahunaClient client, string userId)
        {
            // try to lock on a resource using a keyName composed of a prefix and the user's id,
            // if acquired then automatically release the lock after 5 seconds (if not extended),
            // if not acquired retry to acquire the lock every 100 milliseconds for 10 seconds,
            // it will give up after 10 seconds if the lock is not available,
            // if the lock is acquired it will prevent the same user from changing the same data concurrently

            KahunaLock myLock = await client.GetOrCreateLock(
                "balance-" + userId,
                expiry: TimeSpan.FromSeconds(5),
                wait: TimeSpan.FromSeconds(10),
                retry: TimeSpan.FromMilliseconds(100)
            );
            try
            {
                if (myLock.IsAcquired)
                {
                    Console.WriteLine("Lock acquired!");

                    // implement exclusive logic here
                }
                else
                {
                    Console.WriteLine("Someone else has the lock!");
                }
            }
            finally
            {
                // myLock is automatically released after leaving the method
                await myLock.DisposeAsync();
            }
        }
    }
}
