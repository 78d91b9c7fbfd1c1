import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import org.zstack.sdk.*;

import java.math.BigInteger;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static java.util.Arrays.asList;

/**
 * Drives a running zimage with ZStack's stock Java SDK, as a ZStack user's program would, and checks every
 * API zimage implements (plus the access-key, tag and zone APIs). One line per check, then a summary; exits
 * 1 when a check failed. Configured by environment variables (scripts/sdk-check/run.sh sets them all):
 *
 *   SDKCHECK_PORT            zimage's port on 127.0.0.1
 *   SDKCHECK_IMAGES          directory with disk.qcow2, disk.raw, big.raw, up.qcow2 (under ZIMAGE_IMPORT_FILE_ROOTS)
 *   SDKCHECK_LOCAL_DIR       directory for a local backup storage (and SDKCHECK_LOCAL_DIR2 for one to delete)
 *   SDKCHECK_SFTP_PORT, SDKCHECK_SFTP_USER, SDKCHECK_SFTP_PASSWORD, SDKCHECK_SFTP_DIR   an sshd on 127.0.0.1
 *   SDKCHECK_CEPH_MON, SDKCHECK_CEPH_POOL   optional: a Ceph monitor (host:port) and pool
 *   SDKCHECK_ADMIN_PASSWORD  admin's password (default "password")
 */
public class SdkCheck {
    static final int PORT = Integer.parseInt(env("SDKCHECK_PORT", "8080"));
    static final String BASE = "http://127.0.0.1:" + PORT + "/zstack/v1";
    static final String IMAGES = env("SDKCHECK_IMAGES", null);

    static String session;
    static String accountUuid;
    static String localBs;
    static String localBs2;
    static String sftpBs;
    static String cephBs;

    static String env(String name, String dflt) {
        String v = System.getenv(name);
        return v == null || v.isEmpty() ? dflt : v;
    }

    static String sha512(String s) throws Exception {
        byte[] d = MessageDigest.getInstance("SHA-512").digest(s.getBytes(StandardCharsets.UTF_8));
        return String.format("%0128x", new BigInteger(1, d));
    }

    static LogInByAccountAction.Result login() throws Exception {
        LogInByAccountAction a = new LogInByAccountAction();
        a.accountName = "admin";
        a.password = sha512(env("SDKCHECK_ADMIN_PASSWORD", "password"));
        return a.call();
    }

    public static void main(String[] args) throws Exception {
        ZSClient.configure(new ZSConfig.Builder()
                .setHostname("127.0.0.1")
                .setPort(PORT)
                .setContextPath("zstack")
                .setDefaultPollingInterval(200, TimeUnit.MILLISECONDS)
                .setDefaultPollingTimeout(10, TimeUnit.MINUTES)
                .build());

        sessionChecks();
        storageChecks();
        ImageChecks.run();
        ErrorCodeChecks.run();
        NewApiChecks.run();
        cleanupChecks();

        int failed = Harness.failures.size();
        System.out.println();
        System.out.println(Harness.passed + " passed, " + failed + " failed");
        System.exit(failed == 0 ? 0 : 1);
    }

    static void sessionChecks() {
        Harness.check("LogInByAccount: typed SessionInventory", () -> {
            LogInByAccountAction.Result r = login();
            Harness.ok(r.error);
            SessionInventory s = r.value.getInventory();
            Harness.truth(s.getUuid() != null && s.getAccountUuid() != null, "session uuid and accountUuid set");
            Harness.truth(s.getExpiredDate() != null, "expiredDate set");
            session = s.getUuid();
            accountUuid = s.getAccountUuid();
        });
        Harness.check("LogInByAccount with a wrong password fails", () -> {
            LogInByAccountAction a = new LogInByAccountAction();
            a.accountName = "admin";
            a.password = sha512("not-the-password");
            Harness.truth(a.call().error != null, "login with a wrong password must fail");
        });
        Harness.check("ValidateSession: valid", () -> {
            ValidateSessionAction a = new ValidateSessionAction();
            a.sessionUuid = Harness.need(session, "session");
            ValidateSessionAction.Result r = a.call();
            Harness.ok(r.error);
            Harness.truth(r.value.getValid(), "session is valid");
        });
        Harness.check("RenewSession: typed SessionInventory, later expiry", () -> {
            RenewSessionAction a = new RenewSessionAction();
            a.sessionUuid = Harness.need(session, "session");
            a.duration = 36000L;
            a.sessionId = session;
            RenewSessionAction.Result r = a.call();
            Harness.ok(r.error);
            SessionInventory s = r.value.getInventory();
            Harness.eq(session, s.getUuid(), "uuid");
            Harness.truth(s.getExpiredDate().getTime() > System.currentTimeMillis() + 3 * 3600_000L, "expiredDate ~10 h ahead: " + s.getExpiredDate());
        });
        Harness.check("LogOut, then ValidateSession says invalid", () -> {
            LogInByAccountAction.Result l = login();
            Harness.ok(l.error);
            String other = l.value.getInventory().getUuid();
            LogOutAction out = new LogOutAction();
            out.sessionUuid = other;
            Harness.ok(out.call().error);
            ValidateSessionAction v = new ValidateSessionAction();
            v.sessionUuid = other;
            ValidateSessionAction.Result r = v.call();
            Harness.ok(r.error);
            Harness.truth(!r.value.getValid(), "logged-out session must be invalid");
        });
    }

    /** zimage's own local storage: the SDK has no action for it, so a plain HTTP call, as a user would make. */
    static String addLocal(String name, String dir) throws Exception {
        String body = "{\"params\":{\"name\":\"" + name + "\",\"url\":\"" + dir + "\"}}";
        HttpResponse<String> r = Harness.http("POST", BASE + "/backup-storage/local",
                Map.of("Authorization", "OAuth " + session, "Content-Type", "application/json"), body);
        JsonObject o = JsonParser.parseString(r.body()).getAsJsonObject();
        Harness.truth(r.statusCode() == 200 && o.has("inventory"), "AddLocalBackupStorage answered " + r.statusCode() + " " + r.body());
        return o.getAsJsonObject("inventory").get("uuid").getAsString();
    }

    static void storageChecks() {
        Harness.check("AddLocalBackupStorage (plain HTTP), QueryBackupStorage casts it to BackupStorageInventory", () -> {
            localBs = addLocal("sdk-local", env("SDKCHECK_LOCAL_DIR", null));
            localBs2 = addLocal("sdk-local-2", env("SDKCHECK_LOCAL_DIR2", null));
            QueryBackupStorageAction q = new QueryBackupStorageAction();
            q.conditions = asList("uuid=" + localBs);
            q.sessionId = session;
            QueryBackupStorageAction.Result r = q.call();
            Harness.ok(r.error);
            BackupStorageInventory b = Harness.elem(r.value.getInventories(), 0, BackupStorageInventory.class);
            Harness.eq("Connected", b.getStatus(), "status");
        });
        Harness.check("AddSftpBackupStorage: typed SftpBackupStorageInventory", () -> {
            AddSftpBackupStorageAction a = new AddSftpBackupStorageAction();
            a.name = "sdk-sftp";
            a.hostname = "127.0.0.1";
            a.username = env("SDKCHECK_SFTP_USER", null);
            a.password = env("SDKCHECK_SFTP_PASSWORD", null);
            a.sshPort = Integer.parseInt(env("SDKCHECK_SFTP_PORT", "22"));
            a.url = env("SDKCHECK_SFTP_DIR", null);
            a.sessionId = session;
            AddSftpBackupStorageAction.Result r = a.call();
            Harness.ok(r.error);
            sftpBs = r.value.getInventory().getUuid();
            SftpBackupStorageInventory s = (SftpBackupStorageInventory) r.value.getInventory();
            Harness.eq("127.0.0.1", s.getHostname(), "hostname");
            Harness.eq(a.username, s.getUsername(), "username");
            Harness.eq(a.sshPort, s.getSshPort(), "sshPort");
            Harness.eq("Connected", s.getStatus(), "status");
        });
        Harness.check("QuerySftpBackupStorage: element cast to SftpBackupStorageInventory", () -> {
            QuerySftpBackupStorageAction q = new QuerySftpBackupStorageAction();
            q.sessionId = session;
            QuerySftpBackupStorageAction.Result r = q.call();
            Harness.ok(r.error);
            SftpBackupStorageInventory s = Harness.elem(r.value.getInventories(), 0, SftpBackupStorageInventory.class);
            Harness.eq(Harness.need(sftpBs, "sftp storage"), s.getUuid(), "uuid");
        });
        if (env("SDKCHECK_CEPH_MON", null) != null) cephChecks();
        Harness.check("QueryBackupStorage: every element typed (BackupStorageInventory, SFTP as SftpBackupStorageInventory)", () -> {
            QueryBackupStorageAction q = new QueryBackupStorageAction();
            q.sessionId = session;
            QueryBackupStorageAction.Result r = q.call();
            Harness.ok(r.error);
            List<?> l = r.value.getInventories();
            Harness.truth(l.size() >= 3, "at least 3 storages, got " + l.size());
            for (int i = 0; i < l.size(); i++) {
                BackupStorageInventory b = Harness.elem(l, i, BackupStorageInventory.class);
                if ("SftpBackupStorage".equals(b.getType())) Harness.truth(b instanceof SftpBackupStorageInventory, "element " + i + " is SFTP but " + b.getClass().getName());
                if ("Ceph".equals(b.getType())) Harness.truth(b instanceof CephBackupStorageInventory, "element " + i + " is Ceph but " + b.getClass().getName());
            }
        });
        Harness.check("GetBackupStorageTypes", () -> {
            GetBackupStorageTypesAction a = new GetBackupStorageTypesAction();
            a.sessionId = session;
            GetBackupStorageTypesAction.Result r = a.call();
            Harness.ok(r.error);
            Harness.truth(r.value.getTypes().contains("SftpBackupStorage") && r.value.getTypes().contains("Ceph"), "types " + r.value.getTypes());
        });
        Harness.check("GetBackupStorageCapacity: named storages and all", () -> {
            GetBackupStorageCapacityAction a = new GetBackupStorageCapacityAction();
            a.backupStorageUuids = asList(Harness.need(localBs, "local storage"));
            a.sessionId = session;
            GetBackupStorageCapacityAction.Result r = a.call();
            Harness.ok(r.error);
            Harness.truth(r.value.getTotalCapacity() > 0 && r.value.getAvailableCapacity() > 0
                    && r.value.getAvailableCapacity() <= r.value.getTotalCapacity(), "capacity " + r.value.getTotalCapacity() + "/" + r.value.getAvailableCapacity());
            GetBackupStorageCapacityAction all = new GetBackupStorageCapacityAction();
            all.all = true;
            all.sessionId = session;
            GetBackupStorageCapacityAction.Result ra = all.call();
            Harness.ok(ra.error);
            Harness.truth(ra.value.getTotalCapacity() >= r.value.getTotalCapacity(), "all >= one");
        });
        Harness.check("UpdateBackupStorage on SFTP: typed reply, name changed", () -> {
            UpdateBackupStorageAction a = new UpdateBackupStorageAction();
            a.uuid = Harness.need(sftpBs, "sftp storage");
            a.name = "sdk-sftp-renamed";
            a.description = "updated by the SDK";
            a.sessionId = session;
            UpdateBackupStorageAction.Result r = a.call();
            Harness.ok(r.error);
            Harness.eq("sdk-sftp-renamed", r.value.getInventory().getName(), "name");
            Harness.truth(r.value.getInventory() instanceof SftpBackupStorageInventory, "reply is " + r.value.getInventory().getClass().getName());
        });
        Harness.check("UpdateSftpBackupStorage: typed reply", () -> {
            UpdateSftpBackupStorageAction a = new UpdateSftpBackupStorageAction();
            a.uuid = Harness.need(sftpBs, "sftp storage");
            a.description = "sftp update";
            a.password = env("SDKCHECK_SFTP_PASSWORD", null);
            a.sessionId = session;
            UpdateSftpBackupStorageAction.Result r = a.call();
            Harness.ok(r.error);
            Harness.eq("sftp update", r.value.getInventory().getDescription(), "description");
            SftpBackupStorageInventory s = (SftpBackupStorageInventory) r.value.getInventory();
            Harness.eq(env("SDKCHECK_SFTP_USER", null), s.getUsername(), "username");
        });
        Harness.check("ChangeBackupStorageState disable/enable on SFTP: typed reply", () -> {
            // Both events run before any type assertion, so the storage is never left disabled.
            List<BackupStorageInventory> replies = new ArrayList<>();
            for (String[] ev : new String[][] {{"disable", "Disabled"}, {"enable", "Enabled"}}) {
                ChangeBackupStorageStateAction a = new ChangeBackupStorageStateAction();
                a.uuid = Harness.need(sftpBs, "sftp storage");
                a.stateEvent = ev[0];
                a.sessionId = session;
                ChangeBackupStorageStateAction.Result r = a.call();
                Harness.ok(r.error);
                Harness.eq(ev[1], r.value.getInventory().getState(), "state");
                replies.add(r.value.getInventory());
            }
            for (BackupStorageInventory b : replies) Harness.truth(b instanceof SftpBackupStorageInventory, "reply is " + b.getClass().getName());
        });
        Harness.check("ReconnectBackupStorage on SFTP: Connected, typed reply", () -> {
            ReconnectBackupStorageAction a = new ReconnectBackupStorageAction();
            a.uuid = Harness.need(sftpBs, "sftp storage");
            a.sessionId = session;
            ReconnectBackupStorageAction.Result r = a.call();
            Harness.ok(r.error);
            Harness.eq("Connected", r.value.getInventory().getStatus(), "status");
            Harness.truth(r.value.getInventory() instanceof SftpBackupStorageInventory, "reply is " + r.value.getInventory().getClass().getName());
        });
        Harness.check("ReconnectBackupStorage on local: Connected", () -> {
            ReconnectBackupStorageAction a = new ReconnectBackupStorageAction();
            a.uuid = Harness.need(localBs, "local storage");
            a.sessionId = session;
            ReconnectBackupStorageAction.Result r = a.call();
            Harness.ok(r.error);
            Harness.eq("Connected", r.value.getInventory().getStatus(), "status");
        });
        Harness.check("ReconnectSftpBackupStorage: Connected, typed reply", () -> {
            ReconnectSftpBackupStorageAction a = new ReconnectSftpBackupStorageAction();
            a.uuid = Harness.need(sftpBs, "sftp storage");
            a.sessionId = session;
            ReconnectSftpBackupStorageAction.Result r = a.call();
            Harness.ok(r.error);
            Harness.eq("Connected", r.value.getInventory().getStatus(), "status");
            Harness.truth(r.value.getInventory() instanceof SftpBackupStorageInventory, "reply is " + r.value.getInventory().getClass().getName());
        });
        Harness.check("GetCandidateBackupStorageForCreatingImage: every element typed", () -> {
            GetCandidateBackupStorageForCreatingImageAction a = new GetCandidateBackupStorageForCreatingImageAction();
            a.sessionId = session;
            GetCandidateBackupStorageForCreatingImageAction.Result r = a.call();
            Harness.ok(r.error);
            List<?> l = r.value.getInventories();
            Harness.truth(l.size() >= 2, "at least local and sftp, got " + l.size());
            List<String> uuids = new ArrayList<>();
            for (int i = 0; i < l.size(); i++) uuids.add(Harness.elem(l, i, BackupStorageInventory.class).getUuid());
            Harness.truth(uuids.contains(localBs) && uuids.contains(sftpBs), "candidates " + uuids);
        });
    }

    static void cephChecks() {
        Harness.check("AddCephBackupStorage: typed CephBackupStorageInventory with typed mons", () -> {
            AddCephBackupStorageAction a = new AddCephBackupStorageAction();
            a.name = "sdk-ceph";
            a.monUrls = asList(env("SDKCHECK_CEPH_MON", null));
            a.poolName = env("SDKCHECK_CEPH_POOL", "rbd");
            a.sessionId = session;
            AddCephBackupStorageAction.Result r = a.call();
            Harness.ok(r.error);
            cephBs = r.value.getInventory().getUuid();
            CephBackupStorageInventory c = (CephBackupStorageInventory) r.value.getInventory();
            Harness.eq(a.poolName, c.getPoolName(), "poolName");
            Harness.truth(c.getFsid() != null, "fsid set");
            CephBackupStorageMonInventory m = Harness.elem(c.getMons(), 0, CephBackupStorageMonInventory.class);
            Harness.eq("127.0.0.1", m.getHostname(), "mon hostname");
        });
        Harness.check("QueryCephBackupStorage: element cast to CephBackupStorageInventory", () -> {
            QueryCephBackupStorageAction q = new QueryCephBackupStorageAction();
            q.sessionId = session;
            QueryCephBackupStorageAction.Result r = q.call();
            Harness.ok(r.error);
            CephBackupStorageInventory c = Harness.elem(r.value.getInventories(), 0, CephBackupStorageInventory.class);
            Harness.eq(Harness.need(cephBs, "ceph storage"), c.getUuid(), "uuid");
            Harness.elem(c.getMons(), 0, CephBackupStorageMonInventory.class);
        });
    }

    static void cleanupChecks() {
        Harness.check("DeleteBackupStorage: gone from QueryBackupStorage", () -> {
            DeleteBackupStorageAction d = new DeleteBackupStorageAction();
            d.uuid = Harness.need(localBs2, "second local storage");
            d.sessionId = session;
            Harness.ok(d.call().error);
            QueryBackupStorageAction q = new QueryBackupStorageAction();
            q.conditions = asList("uuid=" + localBs2);
            q.sessionId = session;
            QueryBackupStorageAction.Result r = q.call();
            Harness.ok(r.error);
            Harness.eq(0, r.value.getInventories().size(), "storages left");
        });
        Harness.check("LogOut of the main session", () -> {
            LogOutAction out = new LogOutAction();
            out.sessionUuid = Harness.need(session, "session");
            Harness.ok(out.call().error);
        });
    }
}
