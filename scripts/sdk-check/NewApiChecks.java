import org.zstack.sdk.*;

import java.util.List;

import static java.util.Arrays.asList;

/** Access keys (and calls signed with one), system and user tags, zones. */
final class NewApiChecks {
    static String keyUuid, keyId, keySecret;
    static String sysTag, userTag;
    static String zone;

    static String session() {
        return Harness.need(SdkCheck.session, "session");
    }

    static void run() {
        accessKeys();
        tags();
        zones();
    }

    static void accessKeys() {
        Harness.check("CreateAccessKey: typed AccessKeyInventory with AccessKeyID and AccessKeySecret", () -> {
            CreateAccessKeyAction a = new CreateAccessKeyAction();
            a.accountUuid = Harness.need(SdkCheck.accountUuid, "account uuid");
            a.userUuid = SdkCheck.accountUuid;
            a.description = "sdk-check key";
            a.sessionId = session();
            CreateAccessKeyAction.Result r = a.call();
            Harness.ok(r.error);
            AccessKeyInventory k = r.value.getInventory();
            Harness.truth(k.getAccessKeyID() != null && k.getAccessKeySecret() != null, "AccessKeyID and AccessKeySecret in the reply");
            Harness.eq(AccessKeyState.Enabled, k.getState(), "state");
            keyUuid = k.getUuid();
            keyId = k.getAccessKeyID();
            keySecret = k.getAccessKeySecret();
        });
        Harness.check("QueryAccessKey: element cast to AccessKeyInventory", () -> {
            QueryAccessKeyAction q = new QueryAccessKeyAction();
            q.conditions = asList("uuid=" + Harness.need(keyUuid, "access key"));
            q.sessionId = session();
            QueryAccessKeyAction.Result r = q.call();
            Harness.ok(r.error);
            AccessKeyInventory k = Harness.elem(r.value.getInventories(), 0, AccessKeyInventory.class);
            Harness.eq(keyId, k.getAccessKeyID(), "AccessKeyID");
        });
        Harness.check("Access-key signed QueryImage (no session)", () -> {
            QueryImageAction q = new QueryImageAction();
            q.conditions = asList("uuid=" + Harness.need(ImageChecks.qcowImage, "qcow2 image"));
            q.accessKeyId = Harness.need(keyId, "access key");
            q.accessKeySecret = keySecret;
            QueryImageAction.Result r = q.call();
            Harness.ok(r.error);
            Harness.eq(ImageChecks.qcowImage, Harness.elem(r.value.getInventories(), 0, ImageInventory.class).getUuid(), "uuid");
        });
        Harness.check("Access-key signed async UpdateImage (no session), polled to the end", () -> {
            UpdateImageAction a = new UpdateImageAction();
            a.uuid = Harness.need(ImageChecks.qcowImage, "qcow2 image");
            a.description = "signed update";
            a.accessKeyId = Harness.need(keyId, "access key");
            a.accessKeySecret = keySecret;
            UpdateImageAction.Result r = a.call();
            Harness.ok(r.error);
            Harness.eq("signed update", r.value.getInventory().getDescription(), "description");
        });
        Harness.check("Access-key signed call with a wrong secret fails", () -> {
            QueryImageAction q = new QueryImageAction();
            q.accessKeyId = Harness.need(keyId, "access key");
            q.accessKeySecret = keySecret + "x";
            Harness.truth(q.call().error != null, "a bad signature must be refused");
        });
        Harness.check("ChangeAccessKeyState disable: signed calls refused; enable again", () -> {
            ChangeAccessKeyStateAction c = new ChangeAccessKeyStateAction();
            c.uuid = Harness.need(keyUuid, "access key");
            c.stateEvent = "disable";
            c.sessionId = session();
            ChangeAccessKeyStateAction.Result r = c.call();
            Harness.ok(r.error);
            Harness.eq(AccessKeyState.Disabled, r.value.getInventory().getState(), "state");
            QueryImageAction q = new QueryImageAction();
            q.accessKeyId = keyId;
            q.accessKeySecret = keySecret;
            Harness.truth(q.call().error != null, "a disabled key must be refused");
            c.stateEvent = "enable";
            Harness.ok(c.call().error);
        });
        Harness.check("DeleteAccessKey: signed calls refused", () -> {
            DeleteAccessKeyAction d = new DeleteAccessKeyAction();
            d.uuid = Harness.need(keyUuid, "access key");
            d.sessionId = session();
            Harness.ok(d.call().error);
            QueryImageAction q = new QueryImageAction();
            q.accessKeyId = keyId;
            q.accessKeySecret = keySecret;
            Harness.truth(q.call().error != null, "a deleted key must be refused");
        });
    }

    static void tags() {
        Harness.check("CreateSystemTag on an image: typed SystemTagInventory", () -> {
            CreateSystemTagAction a = new CreateSystemTagAction();
            a.resourceType = "ImageVO";
            a.resourceUuid = Harness.need(ImageChecks.qcowImage, "qcow2 image");
            a.tag = "GuestTools::1.0"; // ZStack accepts only the system tags it defines for the type (ImageSystemTags)
            a.sessionId = session();
            CreateSystemTagAction.Result r = a.call();
            Harness.ok(r.error);
            SystemTagInventory t = r.value.getInventory();
            Harness.eq(a.tag, t.getTag(), "tag");
            Harness.eq(a.resourceUuid, t.getResourceUuid(), "resourceUuid");
            sysTag = t.getUuid();
        });
        Harness.check("CreateUserTag on an image: typed UserTagInventory", () -> {
            CreateUserTagAction a = new CreateUserTagAction();
            a.resourceType = "ImageVO";
            a.resourceUuid = Harness.need(ImageChecks.qcowImage, "qcow2 image");
            a.tag = "sdk-user-tag";
            a.sessionId = session();
            CreateUserTagAction.Result r = a.call();
            Harness.ok(r.error);
            UserTagInventory t = r.value.getInventory();
            Harness.eq(a.tag, t.getTag(), "tag");
            userTag = t.getUuid();
        });
        Harness.check("QuerySystemTag by resourceUuid: every element typed, bootMode::UEFI from SetImageBootMode visible", () -> {
            QuerySystemTagAction q = new QuerySystemTagAction();
            q.conditions = asList("resourceUuid=" + Harness.need(ImageChecks.qcowImage, "qcow2 image"));
            q.sessionId = session();
            QuerySystemTagAction.Result r = q.call();
            Harness.ok(r.error);
            List<?> l = r.value.getInventories();
            boolean boot = false, mine = false;
            for (int i = 0; i < l.size(); i++) {
                SystemTagInventory t = Harness.elem(l, i, SystemTagInventory.class);
                boot |= "bootMode::UEFI".equals(t.getTag());
                mine |= t.getUuid().equals(sysTag);
                Harness.eq("ImageVO", t.getResourceType(), "resourceType");
            }
            Harness.truth(boot && mine, "bootMode::UEFI and the created tag among " + l.size() + " tags");
        });
        Harness.check("QueryUserTag: element typed", () -> {
            QueryUserTagAction q = new QueryUserTagAction();
            q.conditions = asList("uuid=" + Harness.need(userTag, "user tag"));
            q.sessionId = session();
            QueryUserTagAction.Result r = q.call();
            Harness.ok(r.error);
            Harness.eq("sdk-user-tag", Harness.elem(r.value.getInventories(), 0, UserTagInventory.class).getTag(), "tag");
        });
        Harness.check("QueryTag: every element typed TagInventory", () -> {
            QueryTagAction q = new QueryTagAction();
            q.conditions = asList("resourceUuid=" + Harness.need(ImageChecks.qcowImage, "qcow2 image"));
            q.sessionId = session();
            QueryTagAction.Result r = q.call();
            Harness.ok(r.error);
            List<?> l = r.value.getInventories();
            Harness.truth(l.size() >= 3, "system + user tags, got " + l.size());
            for (int i = 0; i < l.size(); i++) Harness.elem(l, i, TagInventory.class);
        });
        Harness.check("UpdateSystemTag: tag changed", () -> {
            UpdateSystemTagAction a = new UpdateSystemTagAction();
            a.uuid = Harness.need(sysTag, "system tag");
            a.tag = "GuestTools::2.0";
            a.sessionId = session();
            UpdateSystemTagAction.Result r = a.call();
            Harness.ok(r.error);
            Harness.eq(a.tag, r.value.getInventory().getTag(), "tag");
        });
        Harness.check("DeleteTag (system and user): gone", () -> {
            for (String uuid : new String[] {Harness.need(sysTag, "system tag"), Harness.need(userTag, "user tag")}) {
                DeleteTagAction d = new DeleteTagAction();
                d.uuid = uuid;
                d.sessionId = session();
                Harness.ok(d.call().error);
            }
            QueryTagAction q = new QueryTagAction();
            q.conditions = asList("uuid?=" + sysTag + "," + userTag);
            q.sessionId = session();
            QueryTagAction.Result r = q.call();
            Harness.ok(r.error);
            Harness.eq(0, r.value.getInventories().size(), "tags left");
        });
    }

    static void zones() {
        Harness.check("CreateZone: typed ZoneInventory", () -> {
            CreateZoneAction a = new CreateZoneAction();
            a.name = "sdk-zone";
            a.description = "zone by the SDK";
            a.sessionId = session();
            CreateZoneAction.Result r = a.call();
            Harness.ok(r.error);
            ZoneInventory z = r.value.getInventory();
            Harness.eq("sdk-zone", z.getName(), "name");
            Harness.eq("Enabled", z.getState(), "state");
            zone = z.getUuid();
        });
        Harness.check("QueryZone: element typed", () -> {
            QueryZoneAction q = new QueryZoneAction();
            q.conditions = asList("uuid=" + Harness.need(zone, "zone"));
            q.sessionId = session();
            QueryZoneAction.Result r = q.call();
            Harness.ok(r.error);
            Harness.eq("sdk-zone", Harness.elem(r.value.getInventories(), 0, ZoneInventory.class).getName(), "name");
        });
        Harness.check("UpdateZone: name changed", () -> {
            UpdateZoneAction a = new UpdateZoneAction();
            a.uuid = Harness.need(zone, "zone");
            a.name = "sdk-zone-2";
            a.sessionId = session();
            UpdateZoneAction.Result r = a.call();
            Harness.ok(r.error);
            Harness.eq("sdk-zone-2", r.value.getInventory().getName(), "name");
        });
        Harness.check("ChangeZoneState disable/enable", () -> {
            for (String[] ev : new String[][] {{"disable", "Disabled"}, {"enable", "Enabled"}}) {
                ChangeZoneStateAction a = new ChangeZoneStateAction();
                a.uuid = Harness.need(zone, "zone");
                a.stateEvent = ev[0];
                a.sessionId = session();
                ChangeZoneStateAction.Result r = a.call();
                Harness.ok(r.error);
                Harness.eq(ev[1], r.value.getInventory().getState(), "state");
            }
        });
        Harness.check("AttachBackupStorageToZone (SFTP): typed reply with attachedZoneUuids; QueryBackupStorage by zone.uuid", () -> {
            AttachBackupStorageToZoneAction a = new AttachBackupStorageToZoneAction();
            a.zoneUuid = Harness.need(zone, "zone");
            a.backupStorageUuid = Harness.need(SdkCheck.sftpBs, "sftp storage");
            a.sessionId = session();
            AttachBackupStorageToZoneAction.Result r = a.call();
            Harness.ok(r.error);
            BackupStorageInventory b = r.value.getInventory();
            Harness.truth(b instanceof SftpBackupStorageInventory, "reply is " + b.getClass().getName());
            Harness.truth(b.getAttachedZoneUuids() != null && b.getAttachedZoneUuids().contains(zone), "attachedZoneUuids " + b.getAttachedZoneUuids());
            QueryBackupStorageAction q = new QueryBackupStorageAction();
            q.conditions = asList("zone.uuid=" + zone);
            q.sessionId = session();
            QueryBackupStorageAction.Result qr = q.call();
            Harness.ok(qr.error);
            Harness.eq(1, qr.value.getInventories().size(), "storages in the zone");
            Harness.eq(SdkCheck.sftpBs, Harness.elem(qr.value.getInventories(), 0, SftpBackupStorageInventory.class).getUuid(), "uuid");
        });
        Harness.check("AttachBackupStorageToZone twice: SYS.1006", () -> {
            AttachBackupStorageToZoneAction a = new AttachBackupStorageToZoneAction();
            a.zoneUuid = Harness.need(zone, "zone");
            a.backupStorageUuid = Harness.need(SdkCheck.sftpBs, "sftp storage");
            a.sessionId = session();
            Harness.expectCode(a.call().error, "SYS.1006");
        });
        Harness.check("DetachBackupStorageFromZone: attachedZoneUuids empty", () -> {
            DetachBackupStorageFromZoneAction a = new DetachBackupStorageFromZoneAction();
            a.zoneUuid = Harness.need(zone, "zone");
            a.backupStorageUuid = Harness.need(SdkCheck.sftpBs, "sftp storage");
            a.sessionId = session();
            DetachBackupStorageFromZoneAction.Result r = a.call();
            Harness.ok(r.error);
            List<?> z = r.value.getInventory().getAttachedZoneUuids();
            Harness.truth(z == null || !z.contains(zone), "attachedZoneUuids " + z);
        });
        Harness.check("DeleteZone (with a storage attached): zone gone, storage detached", () -> {
            AttachBackupStorageToZoneAction a = new AttachBackupStorageToZoneAction();
            a.zoneUuid = Harness.need(zone, "zone");
            a.backupStorageUuid = Harness.need(SdkCheck.localBs, "local storage");
            a.sessionId = session();
            Harness.ok(a.call().error);
            DeleteZoneAction d = new DeleteZoneAction();
            d.uuid = zone;
            d.sessionId = session();
            Harness.ok(d.call().error);
            QueryZoneAction q = new QueryZoneAction();
            q.conditions = asList("uuid=" + zone);
            q.sessionId = session();
            QueryZoneAction.Result r = q.call();
            Harness.ok(r.error);
            Harness.eq(0, r.value.getInventories().size(), "zones left");
            QueryBackupStorageAction qb = new QueryBackupStorageAction();
            qb.conditions = asList("uuid=" + SdkCheck.localBs);
            qb.sessionId = session();
            BackupStorageInventory b = Harness.elem(qb.call().value.getInventories(), 0, BackupStorageInventory.class);
            Harness.truth(b.getAttachedZoneUuids() == null || !b.getAttachedZoneUuids().contains(zone), "attachedZoneUuids " + b.getAttachedZoneUuids());
        });
    }

    private NewApiChecks() {}
}
