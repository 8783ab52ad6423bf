// Transactional compare-and-set: move an amount between two accounts atomically. The
// transaction applies only if neither balance changed since it was read; otherwise it reads
// again and retries.
using System;
using System.Threading;
using System.Threading.Tasks;
using Kahuna.Client;

namespace Kahuna.Samples
{
    public static class Transfer
    {
        /// <summary>Moves <paramref name="amount"/> from one account to another; false when funds are short.</summary>
        public static async Task<bool> Move(KahunaClient client, string from, string to, long amount,
            CancellationToken cancellationToken = default)
        {
            while (true)
            {
                var a = await client.GetKeyValue(from, KeyValueDurability.Persistent, cancellationToken);
                var b = await client.GetKeyValue(to, KeyValueDurability.Persistent, cancellationToken);
                long fromBalance = a.Success ? a.ValueAsLong() : 0;
                long toBalance = b.Success ? b.ValueAsLong() : 0;
                if (fromBalance < amount) return false;
                var r = await client.CreateTransaction()
                    .IfRevision(from, a.Revision).IfRevision(to, b.Revision)
                    .ThenSet(from, (fromBalance - amount).ToString())
                    .ThenSet(to, (toBalance + amount).ToString())
                    .Commit(cancellationToken);
                if (r.Succeeded) return true;
            }
        }
    }
}
