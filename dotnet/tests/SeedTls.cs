// The seed's example over TLS, and each way of trusting a server, against 3-node
// clusters with TLS on both ports (dotnet/tests/cluster.sh with KAHUNA_TLS=1).
// Args: ENDPOINTS (https://localhost:PORT,...) CLUSTER_DIR MODE, where MODE is
//   seed  the seed's snippet verbatim except for host names (a cluster without tokens)
//   auth  trust by CA and by pin, tokens, bad options (a cluster with KAHUNA_AUTH=1)
// dotnet/test.sh runs it with SSL_CERT_FILE naming the test CA, which is how a machine
// whose trust store holds the cluster's CA looks to the client.
using System;
using System.IO;
using System.Threading.Tasks;
using Kahuna.Client;

public static class SeedTls
{
    private static int s_passed, s_failed;

    public static int Main(string[] args)
    {
        try
        {
            string[] endpoints = args[0].Split(',');
            if (args[2] == "seed") SeedAsync(endpoints).GetAwaiter().GetResult();
            else RunAsync(endpoints, args[1]).GetAwaiter().GetResult();
        }
        catch (Exception e)
        {
            Console.WriteLine("FAIL unexpected: " + e);
            s_failed++;
        }
        Console.WriteLine("tls: " + s_passed + " passed, " + s_failed + " failed");
        return s_failed == 0 && s_passed > 0 ? 0 : 1;
    }

    private static void Check(string name, bool ok, string detail = "")
    {
        Console.WriteLine((ok ? "ok   " : "FAIL ") + name + (ok || detail == "" ? "" : ": " + detail));
        if (ok) s_passed++; else s_failed++;
    }

    private static async Task<KahunaErrorCode?> FailureOf(Func<Task> call)
    {
        try
        {
            await call();
            return null;
        }
        catch (KahunaException e)
        {
            Console.WriteLine("     (" + e.Message + ")");
            return e.Code;
        }
    }

    private static async Task SeedAsync(string[] endpoints)
    {
        // The seed's example as written, with its host names replaced by endpoints[0] and [1]
        // and `await using` spelled as the try/finally it stands for (Mono's mcs has no C# 8).
        // The CA is trusted the way a deployment trusts it: through the system's trust store.
        var client = new KahunaClient(new[] { endpoints[0], endpoints[1] });
        KahunaLock jobLock = await client.GetOrCreateLock("jobs/invoice-2048",
            expiry: TimeSpan.FromSeconds(30), wait: TimeSpan.FromSeconds(5), retry: TimeSpan.FromMilliseconds(200));
        try
        {
            if (jobLock.IsAcquired) { /* fenced work with jobLock.FencingToken */ }
            Check("seed: lock acquired over https with the system's trust store", jobLock.IsAcquired && jobLock.FencingToken > 0);
            var written = await client.SetKeyValue("jobs/invoice-2048/state", "done");
            Check("seed: a write over https", written.Success && written.Revision > 0);
        }
        finally
        {
            await jobLock.DisposeAsync();
        }
        client.Dispose();
    }

    private static async Task RunAsync(string[] endpoints, string dir)
    {
        string token = File.ReadAllText(Path.Combine(dir, "token")).Trim();
        string caPem = File.ReadAllText(Path.Combine(dir, "pki", "ca.pem"));
        string serverPin = File.ReadAllText(Path.Combine(dir, "pki", "server.sha256")).Trim();

        var withCa = new KahunaClient(endpoints, new KahunaClientOptions { CaCertificatePem = caPem, Token = token });
        Check("CaCertificatePem: a write", (await withCa.SetKeyValue("jobs/invoice-2048/state", "done")).Success);
        Check("CaCertificatePem: a read", (await withCa.GetKeyValue("jobs/invoice-2048/state")).ValueAsString() == "done");
        withCa.Dispose();

        var pinned = new KahunaClient(endpoints,
            new KahunaClientOptions { TrustedServerCertificateThumbprints = new[] { serverPin }, Token = token });
        Check("TrustedServerCertificateThumbprints: the server's pin is trusted",
            (await pinned.GetKeyValue("jobs/invoice-2048/state")).ValueAsString() == "done");
        pinned.Dispose();

        var wrongPin = new KahunaClient(endpoints, new KahunaClientOptions
        {
            TrustedServerCertificateThumbprints = new[] { new string('0', 64) },
            Token = token,
            OperationTimeout = TimeSpan.FromSeconds(3),
        });
        var refused = await FailureOf(() => wrongPin.GetKeyValue("jobs/invoice-2048/state"));
        Check("a server whose certificate matches no pin is not talked to",
            refused == KahunaErrorCode.Unavailable || refused == KahunaErrorCode.Timeout, "got " + refused);
        wrongPin.Dispose();

        var anonymous = new KahunaClient(endpoints, new KahunaClientOptions { CaCertificatePem = caPem });
        var unauthenticated = await FailureOf(() => anonymous.GetKeyValue("jobs/invoice-2048/state"));
        Check("no token: Unauthenticated", unauthenticated == KahunaErrorCode.Unauthenticated, "got " + unauthenticated);
        anonymous.Dispose();

        var badToken = new KahunaClient(endpoints, new KahunaClientOptions { CaCertificatePem = caPem, Token = "not-the-token" });
        var wrong = await FailureOf(() => badToken.GetKeyValue("jobs/invoice-2048/state"));
        Check("a wrong token: Unauthenticated", wrong == KahunaErrorCode.Unauthenticated, "got " + wrong);
        badToken.Dispose();

        Check("a CA that is not PEM: Config at construction",
            ConstructionFailure(new KahunaClientOptions { CaCertificatePem = "not a certificate" }, endpoints) == KahunaErrorCode.Config);
        Check("a CA and a pin together: Config",
            ConstructionFailure(new KahunaClientOptions { CaCertificatePem = caPem, TrustedServerCertificateThumbprints = new[] { serverPin } }, endpoints)
                == KahunaErrorCode.Config);
        Check("TLS options with an http:// endpoint: Config",
            ConstructionFailure(new KahunaClientOptions { CaCertificatePem = caPem }, new[] { "http://localhost:1" }) == KahunaErrorCode.Config);
    }

    private static KahunaErrorCode? ConstructionFailure(KahunaClientOptions options, string[] endpoints)
    {
        try
        {
            new KahunaClient(endpoints, options).Dispose();
            return null;
        }
        catch (KahunaException e)
        {
            Console.WriteLine("     (" + e.Message + ")");
            return e.Code;
        }
    }
}
