import org.zstack.sdk.*;
import java.util.*;

/**
 * Drives zimage's access-key, tag and zone APIs with ZStack's stock Java SDK (signed calls included).
 * Args: <zimage port> [admin password, default "password"]. Built and run by run.sh.
 */
public class NewApisCheck {
    static int pass = 0, fail = 0;
    static void check(String what, boolean ok, Object detail) {
        if (ok) { pass++; System.out.println("PASS " + what); } else { fail++; System.out.println("FAIL " + what + " :: " + detail); }
    }
    static String sha512(String s) throws Exception {
        StringBuilder hex = new StringBuilder();
        for (byte b : java.security.MessageDigest.getInstance("SHA-512").digest(s.getBytes("UTF-8"))) hex.append(String.format("%02x", b));
        return hex.toString();
    }

    public static void main(String[] a) throws Exception {
        ZSClient.configure(new ZSConfig.Builder().setHostname("127.0.0.1").setPort(Integer.parseInt(a[0])).setContextPath("zstack").build());
        LogInByAccountAction login = new LogInByAccountAction();
        login.accountName = "admin";
        login.password = sha512(a.length > 1 ? a[1] : "password");
        SessionInventory s = login.call().throwExceptionIfError().value.inventory;
        String acc = s.accountUuid;

        CreateAccessKeyAction ck = new CreateAccessKeyAction();
        ck.accountUuid = acc; ck.userUuid = acc; ck.sessionId = s.uuid; ck.description = "sdk";
        AccessKeyInventory key = ck.call().throwExceptionIfError().value.inventory;
        check("CreateAccessKey returns AccessKeyID and AccessKeySecret", key.AccessKeyID != null && key.AccessKeySecret != null && key.state == AccessKeyState.Enabled, key.state);

        QueryAccessKeyAction qk = new QueryAccessKeyAction();
        qk.accessKeyId = key.AccessKeyID; qk.accessKeySecret = key.AccessKeySecret;
        qk.conditions = Arrays.asList("uuid=" + key.uuid);
        QueryAccessKeyAction.Result qr = qk.call();
        check("signed QueryAccessKey (GET)", qr.error == null && qr.value.inventories.size() == 1, qr.error);

        CreateZoneAction cz = new CreateZoneAction();
        cz.name = "sdk-zone"; cz.accessKeyId = key.AccessKeyID; cz.accessKeySecret = key.AccessKeySecret;
        cz.userTags = Arrays.asList("owner::sdk");
        CreateZoneAction.Result zr = cz.call();
        check("signed CreateZone (POST, polled)", zr.error == null && "sdk-zone".equals(zr.value.inventory.name), zr.error);
        ZoneInventory zone = zr.value.inventory;

        UpdateZoneAction uz = new UpdateZoneAction();
        uz.uuid = zone.uuid; uz.description = "updated"; uz.accessKeyId = key.AccessKeyID; uz.accessKeySecret = key.AccessKeySecret;
        UpdateZoneAction.Result ur = uz.call();
        check("signed UpdateZone (PUT, polled)", ur.error == null && "updated".equals(ur.value.inventory.description), ur.error);

        ChangeZoneStateAction cs = new ChangeZoneStateAction();
        cs.uuid = zone.uuid; cs.stateEvent = "disable"; cs.sessionId = s.uuid;
        check("ChangeZoneState", "Disabled".equals(cs.call().throwExceptionIfError().value.inventory.state), null);

        QueryZoneAction qz = new QueryZoneAction();
        qz.conditions = Arrays.asList("name=sdk-zone"); qz.accessKeyId = key.AccessKeyID; qz.accessKeySecret = key.AccessKeySecret;
        QueryZoneAction.Result qzr = qz.call();
        check("signed QueryZone", qzr.error == null && qzr.value.inventories.size() == 1, qzr.error);

        QueryUserTagAction qu = new QueryUserTagAction();
        qu.conditions = Arrays.asList("resourceUuid=" + zone.uuid); qu.sessionId = s.uuid;
        QueryUserTagAction.Result qur = qu.call();
        check("QueryUserTag sees the tag given with CreateZone", qur.error == null && qur.value.inventories.size() == 1, qur.error);

        CreateSystemTagAction cst = new CreateSystemTagAction();
        cst.resourceType = "ZoneVO"; cst.resourceUuid = zone.uuid; cst.tag = "host::reservedCpu::2"; cst.sessionId = s.uuid;
        CreateSystemTagAction.Result cstr = cst.call();
        check("CreateSystemTag (SystemTagInventory)", cstr.error == null && cstr.value.inventory.tag.equals("host::reservedCpu::2") && Boolean.FALSE.equals(cstr.value.inventory.inherent), cstr.error);

        UpdateSystemTagAction ust = new UpdateSystemTagAction();
        ust.uuid = cstr.value.inventory.uuid; ust.tag = "host::reservedCpu::4"; ust.sessionId = s.uuid;
        UpdateSystemTagAction.Result ustr = ust.call();
        check("UpdateSystemTag", ustr.error == null && ustr.value.inventory.tag.equals("host::reservedCpu::4"), ustr.error);

        CreateUserTagAction cut = new CreateUserTagAction();
        cut.resourceType = "ZoneVO"; cut.resourceUuid = zone.uuid; cut.tag = "owner::sdk"; cut.sessionId = s.uuid;
        CreateUserTagAction.Result cutr = cut.call();
        check("CreateUserTag twice is SYS.1006", cutr.error != null && "SYS.1006".equals(cutr.error.code), cutr.error);

        QueryTagAction qt = new QueryTagAction();
        qt.conditions = Arrays.asList("resourceUuid=" + zone.uuid); qt.sessionId = s.uuid;
        QueryTagAction.Result qtr = qt.call();
        check("QueryTag lists both", qtr.error == null && qtr.value.inventories.size() == 2, qtr.error);

        DeleteTagAction dt = new DeleteTagAction();
        dt.uuid = cstr.value.inventory.uuid; dt.sessionId = s.uuid;
        check("DeleteTag", dt.call().error == null, null);

        QueryBackupStorageAction qb = new QueryBackupStorageAction();
        qb.conditions = Arrays.asList("attachedZoneUuids=" + zone.uuid); qb.sessionId = s.uuid;
        QueryBackupStorageAction.Result qbr = qb.call();
        check("QueryBackupStorage by attachedZoneUuids (none yet)", qbr.error == null && qbr.value.inventories.isEmpty(), qbr.error);

        ChangeAccessKeyStateAction off = new ChangeAccessKeyStateAction();
        off.uuid = key.uuid; off.stateEvent = "disable"; off.sessionId = s.uuid;
        ChangeAccessKeyStateAction.Result offr = off.call();
        check("ChangeAccessKeyState disable", offr.error == null && offr.value.inventory.state == AccessKeyState.Disabled, offr.error);
        QueryAccessKeyAction.Result refused = qk.call();
        check("a disabled key is refused (403)", refused.error != null && refused.error.details != null && refused.error.details.contains("does not existed or disabled"), refused.error == null ? null : refused.error.details);

        DeleteZoneAction dz = new DeleteZoneAction();
        dz.uuid = zone.uuid; dz.sessionId = s.uuid;
        check("DeleteZone", dz.call().error == null, null);
        DeleteAccessKeyAction dk = new DeleteAccessKeyAction();
        dk.uuid = key.uuid; dk.sessionId = s.uuid;
        check("DeleteAccessKey", dk.call().error == null, null);
        System.out.println("RESULT " + pass + " of " + (pass + fail) + " pass");
        System.exit(fail == 0 ? 0 : 1);
    }
}
