import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import com.sun.net.httpserver.HttpServer;
import org.zstack.sdk.ErrorCode;

import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;

/**
 * The check runner and the reference tools the checks compare against: `qemu-img info --output=json` for
 * sizes, `openssl dgst` for digests, plain HTTP for what the SDK has no action for (local storage, upload
 * and export bytes), and a throttled HTTP file server for imports slow enough to watch and cancel.
 */
final class Harness {
    interface Check {
        void run() throws Exception;
    }

    static int passed;
    static final List<String> failures = new ArrayList<>();

    static void check(String name, Check c) {
        try {
            c.run();
            passed++;
            System.out.println("PASS " + name);
        } catch (Throwable t) {
            String line = "FAIL " + name + ": " + describe(t);
            failures.add(line);
            System.out.println(line);
        }
        System.out.flush();
    }

    /** Exception class and message, with the causes (ApiException wraps the real one), on one line. */
    static String describe(Throwable t) {
        StringBuilder sb = new StringBuilder();
        for (Throwable c = t; c != null; c = c.getCause() == c ? null : c.getCause()) {
            if (sb.length() > 0) sb.append(" <- ");
            sb.append(c.getClass().getName()).append(": ").append(c.getMessage());
        }
        String s = sb.toString().replace('\n', ' ');
        return s.length() > 600 ? s.substring(0, 600) + "…" : s;
    }

    /** Fails with the server's error (code, description, details) when the call failed. */
    static void ok(ErrorCode e) {
        if (e != null) throw new AssertionError("API error " + e.code + ": " + e.description + " / " + e.details);
    }

    static void expectCode(ErrorCode e, String code) {
        if (e == null) throw new AssertionError("expected error " + code + " but the call succeeded");
        if (!code.equals(e.code)) throw new AssertionError("expected error " + code + ", got " + e.code + ": " + e.details);
    }

    /**
     * A sync API's failure. ZStack's RestServer answers it 503 with the error body; the stock SDK treats any
     * non-2xx answer of a sync call as an HTTP error (sdk.1000) whose details are that body, so the code is inside.
     */
    static void expectSyncCode(ErrorCode e, String code) {
        if (e == null) throw new AssertionError("expected error " + code + " but the call succeeded");
        String got = e.code;
        if ("sdk.1000".equals(e.code) && e.details != null && e.details.trim().startsWith("{")) {
            JsonObject body = JsonParser.parseString(e.details).getAsJsonObject();
            if (body.has("error")) got = body.getAsJsonObject("error").get("code").getAsString();
        }
        if (!code.equals(got)) throw new AssertionError("expected error " + code + ", got " + got + ": " + e.details);
    }

    static void eq(Object expected, Object actual, String what) {
        boolean same = expected == null ? actual == null
                : (expected instanceof Number && actual instanceof Number)
                        ? ((Number) expected).longValue() == ((Number) actual).longValue()
                        : expected.equals(actual);
        if (!same) throw new AssertionError(what + ": expected " + expected + ", got " + actual);
    }

    static void truth(boolean cond, String what) {
        if (!cond) throw new AssertionError(what);
    }

    /** A value an earlier check should have produced. */
    static <T> T need(T v, String what) {
        if (v == null) throw new IllegalStateException("prerequisite missing: " + what);
        return v;
    }

    /** Element i of a list the SDK returned, cast to the SDK type a user would cast it to. */
    static <T> T elem(List<?> list, int i, Class<T> type) {
        truth(list != null, "list is null");
        truth(list.size() > i, "list has " + list.size() + " elements, wanted index " + i);
        Object o = list.get(i);
        return type.cast(o);
    }

    static String run(String... cmd) throws Exception {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (p.waitFor() != 0) throw new IllegalStateException(String.join(" ", cmd) + " failed: " + out);
        return out;
    }

    static JsonObject qemuInfo(String file) throws Exception {
        return JsonParser.parseString(run("qemu-img", "info", "--output=json", file)).getAsJsonObject();
    }

    /** `openssl dgst -<alg> -r FILE` → lower-case hex. */
    static String dgst(String alg, String file) throws Exception {
        return run("openssl", "dgst", "-" + alg.toLowerCase(), "-r", file).split(" ")[0].trim().toLowerCase();
    }

    static final HttpClient HTTP = HttpClient.newHttpClient();

    static HttpResponse<String> http(String method, String url, Map<String, String> headers, String body) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(url))
                .method(method, body == null ? HttpRequest.BodyPublishers.noBody() : HttpRequest.BodyPublishers.ofString(body));
        headers.forEach(b::header);
        return HTTP.send(b.build(), HttpResponse.BodyHandlers.ofString());
    }

    static HttpResponse<String> putFile(String url, Path file, Map<String, String> headers) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(url)).PUT(HttpRequest.BodyPublishers.ofFile(file));
        headers.forEach(b::header);
        return HTTP.send(b.build(), HttpResponse.BodyHandlers.ofString());
    }

    /** GET url → {status, md5 hex of the body}. */
    static String[] getMd5(String url) throws Exception {
        HttpResponse<InputStream> r = HTTP.send(HttpRequest.newBuilder(URI.create(url)).GET().build(), HttpResponse.BodyHandlers.ofInputStream());
        MessageDigest md = MessageDigest.getInstance("MD5");
        try (InputStream in = r.body()) {
            byte[] buf = new byte[1 << 16];
            for (int n; (n = in.read(buf)) > 0; ) md.update(buf, 0, n);
        }
        return new String[] {String.valueOf(r.statusCode()), HexFormat.of().formatHex(md.digest())};
    }

    /**
     * Serves the files of `dir` on 127.0.0.1 (a free port). `/slow/<name>` sends at `slowBytesPerSec`, so an
     * import of it runs long enough to read its progress and cancel it.
     */
    static HttpServer fileServer(Path dir, long slowBytesPerSec) throws Exception {
        HttpServer s = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 16);
        s.createContext("/", ex -> {
            String p = ex.getRequestURI().getPath();
            boolean slow = p.startsWith("/slow/");
            Path f = dir.resolve(p.substring(slow ? 6 : 1)).normalize();
            if (!f.startsWith(dir) || !Files.isRegularFile(f)) {
                ex.sendResponseHeaders(404, -1);
                ex.close();
                return;
            }
            long size = Files.size(f);
            ex.getResponseHeaders().add("Content-Type", "application/octet-stream");
            ex.sendResponseHeaders(200, size);
            try (InputStream in = Files.newInputStream(f); OutputStream out = ex.getResponseBody()) {
                byte[] buf = new byte[64 * 1024];
                long t0 = System.nanoTime(), sent = 0;
                for (int n; (n = in.read(buf)) > 0; ) {
                    out.write(buf, 0, n);
                    sent += n;
                    if (slow) {
                        long due = t0 + sent * 1_000_000_000L / slowBytesPerSec;
                        long wait = (due - System.nanoTime()) / 1_000_000L;
                        if (wait > 0) Thread.sleep(wait);
                    }
                }
            } catch (Exception ignored) {
                // the client went away (a cancelled import)
            }
        });
        s.start();
        return s;
    }

    static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private Harness() {}
}
