// Idempotent allocation: reserve ranges of identifiers that never overlap; a retry with the
// same idempotency key (after a timeout, a crash, from another process) gets the same range.
using System.Threading;
using System.Threading.Tasks;
using Kahuna.Client;

namespace Kahuna.Samples
{
    public static class AllocateIds
    {
        /// <summary>Identifiers for one import batch: the same range however often the batch is retried.</summary>
        public static Task<KahunaSequenceRange> ForBatch(KahunaClient client, string batchId, long count,
            CancellationToken cancellationToken = default)
        {
            return client.ReserveSequenceRange("orders", count, "import-" + batchId, cancellationToken);
        }
    }
}
