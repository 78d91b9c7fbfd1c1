import org.zstack.sdk.*;

import java.util.UUID;

import static java.util.Arrays.asList;

/**
 * The answer ZStack's own source gives at a check zimage also makes (the class named in each check is where
 * ZStack decides). Runs after ImageChecks: qcowImage is Ready on local storage, `uploaded` is Ready on local.
 * Checks the SDK itself makes before sending (maxLength, validValues: e.g. a url over 1024 characters, an
 * exportFormat other than raw/qcow2) cannot reach the server from here and are left out.
 */
final class ErrorCodeChecks {
    /** A uuid of the form ZStack's validator accepts, naming nothing. */
    static final String NOWHERE = UUID.randomUUID().toString().replace("-", "");

    static String session() {
        return Harness.need(SdkCheck.session, "session");
    }

    static void run() {
        Harness.check("code: GetBackupStorageCapacity with no uuids, zones or all → SYS.1007 (BackupStorageApiInterceptor)", () -> {
            GetBackupStorageCapacityAction a = new GetBackupStorageCapacityAction();
            a.sessionId = session();
            Harness.expectSyncCode(a.call().error, "SYS.1007");
        });
        Harness.check("code: GetBackupStorageCapacity naming an unknown storage → SYS.1003 (PortApiValidator)", () -> {
            GetBackupStorageCapacityAction a = new GetBackupStorageCapacityAction();
            a.backupStorageUuids = asList(NOWHERE);
            a.sessionId = session();
            Harness.expectSyncCode(a.call().error, "SYS.1003");
        });
        Harness.check("code: AddImage with an unknown type → SYS.1007 (ImageApiInterceptor)", () -> {
            AddImageAction a = new AddImageAction();
            a.name = "sdk-badtype";
            a.url = "file://" + ImageChecks.img("disk.qcow2");
            a.format = "qcow2";
            a.type = "NoSuchType";
            a.backupStorageUuids = asList(Harness.need(SdkCheck.localBs, "local storage"));
            a.sessionId = session();
            Harness.expectCode(a.call().error, "SYS.1007");
        });
        Harness.check("code: AddImage onto a Disabled storage → SYS.1002 (ImageManagerImpl wraps DownloadImageMsg's state check)", () -> {
            ChangeBackupStorageStateAction c = new ChangeBackupStorageStateAction();
            c.uuid = Harness.need(SdkCheck.localBs2, "second local storage");
            c.stateEvent = "disable";
            c.sessionId = session();
            Harness.ok(c.call().error);
            try {
                AddImageAction a = new AddImageAction();
                a.name = "sdk-disabled";
                a.url = "file://" + ImageChecks.img("disk.qcow2");
                a.format = "qcow2";
                a.backupStorageUuids = asList(SdkCheck.localBs2);
                a.sessionId = session();
                Harness.expectCode(a.call().error, "SYS.1002");
            } finally {
                c.stateEvent = "enable";
                c.call();
            }
        });
        Harness.check("code: DeleteImage naming a storage without a copy → success, nothing deleted (ImageBase filters the refs)", () -> {
            DeleteImageAction d = new DeleteImageAction();
            d.uuid = Harness.need(ImageChecks.qcowImage, "qcow2 image");
            d.backupStorageUuids = asList(Harness.need(SdkCheck.localBs2, "second local storage"));
            d.sessionId = session();
            Harness.ok(d.call().error);
            Harness.eq("Ready", ImageChecks.one(ImageChecks.qcowImage).getStatus(), "image status");
        });
        Harness.check("code: DeleteImage naming an unknown storage → SYS.1003 (PortApiValidator)", () -> {
            DeleteImageAction d = new DeleteImageAction();
            d.uuid = Harness.need(ImageChecks.qcowImage, "qcow2 image");
            d.backupStorageUuids = asList(NOWHERE);
            d.sessionId = session();
            Harness.expectCode(d.call().error, "SYS.1003");
        });
        Harness.check("code: ExpungeImage naming a storage without a copy → SYS.1007 (ImageBase argerr)", () -> {
            ExpungeImageAction e = new ExpungeImageAction();
            e.imageUuid = Harness.need(ImageChecks.qcowImage, "qcow2 image");
            e.backupStorageUuids = asList(Harness.need(SdkCheck.localBs2, "second local storage"));
            e.sessionId = session();
            Harness.expectCode(e.call().error, "SYS.1007");
        });
        Harness.check("code: RecoverImage naming a storage without a copy → SYS.1007 (ImageBase argerr)", () -> {
            RecoverImageAction r = new RecoverImageAction();
            r.imageUuid = Harness.need(ImageChecks.qcowImage, "qcow2 image");
            r.backupStorageUuids = asList(Harness.need(SdkCheck.localBs2, "second local storage"));
            r.sessionId = session();
            Harness.expectCode(r.call().error, "SYS.1007");
        });
        Harness.check("code: CancelLongJob of a finished job → SYS.1007 (LongJobApiInterceptor)", () -> {
            SyncImageSizeAction s = new SyncImageSizeAction();
            s.uuid = Harness.need(ImageChecks.qcowImage, "qcow2 image");
            s.apiId = UUID.randomUUID().toString().replace("-", "");
            s.sessionId = session();
            Harness.ok(s.call().error);
            CancelLongJobAction c = new CancelLongJobAction();
            c.uuid = s.apiId;
            c.sessionId = session();
            Harness.expectCode(c.call().error, "SYS.1007");
        });
        Harness.check("code: DeleteExportedImageFromBackupStorage, image not on that storage → success (CephBackupStorageBase)", () -> {
            DeleteExportedImageFromBackupStorageAction a = new DeleteExportedImageFromBackupStorageAction();
            a.backupStorageUuid = Harness.need(SdkCheck.localBs2, "second local storage");
            a.imageUuid = Harness.need(ImageChecks.qcowImage, "qcow2 image");
            a.sessionId = session();
            Harness.ok(a.call().error);
        });
        sftpCodes();
        deletedImageCodes();
    }

    static AddSftpBackupStorageAction sftp(String hostname, int port, String url) {
        AddSftpBackupStorageAction a = new AddSftpBackupStorageAction();
        a.name = "sdk-sftp-code";
        a.hostname = hostname;
        a.username = SdkCheck.env("SDKCHECK_SFTP_USER", null);
        a.password = SdkCheck.env("SDKCHECK_SFTP_PASSWORD", null);
        a.sshPort = port;
        a.url = url;
        a.sessionId = session();
        return a;
    }

    /** Expects `code`; a storage added by mistake is deleted again so later checks see the same set. */
    static void expectNoAdd(AddSftpBackupStorageAction a, String code) {
        AddSftpBackupStorageAction.Result r = a.call();
        if (r.error == null && r.value != null && r.value.getInventory() != null) {
            DeleteBackupStorageAction d = new DeleteBackupStorageAction();
            d.uuid = r.value.getInventory().getUuid();
            d.sessionId = session();
            d.call();
        }
        Harness.expectCode(r.error, code);
    }

    static void sftpCodes() {
        int port = Integer.parseInt(SdkCheck.env("SDKCHECK_SFTP_PORT", "22"));
        String dir = SdkCheck.env("SDKCHECK_SFTP_DIR", "/srv");
        Harness.check("code: AddSftpBackupStorage with hostname 'bad host!' → SYS.1007 (SftpBackupStorageApiInterceptor)",
                () -> expectNoAdd(sftp("bad host!", port, dir + "/x"), "SYS.1007"));
        Harness.check("code: AddSftpBackupStorage with url under /proc → SYS.1007 (SftpBackupStorageApiInterceptor)",
                () -> expectNoAdd(sftp("localhost", port, "/proc/zimage"), "SYS.1007"));
        Harness.check("code: AddSftpBackupStorage, a second one on the same hostname → SYS.1006 (SftpBackupStorageApiInterceptor)",
                () -> expectNoAdd(sftp("127.0.0.1", port, dir + "/second"), "SYS.1006"));
        Harness.check("code: AddSftpBackupStorage that cannot connect → SYS.1002 (BackupStorageManagerImpl wraps the connect error)",
                () -> expectNoAdd(sftp("localhost", 1, dir + "/x"), "SYS.1002"));
    }

    static void deletedImageCodes() {
        Harness.check("code: ChangeImageState and UpdateImage on a Deleted image → success (ImageBase has no status check)", () -> {
            DeleteImageAction d = new DeleteImageAction();
            d.uuid = Harness.need(ImageChecks.uploaded, "uploaded image");
            d.sessionId = session();
            Harness.ok(d.call().error);
            ChangeImageStateAction c = new ChangeImageStateAction();
            c.uuid = ImageChecks.uploaded;
            c.stateEvent = "disable";
            c.sessionId = session();
            ChangeImageStateAction.Result cr = c.call();
            UpdateImageAction u = new UpdateImageAction();
            u.uuid = ImageChecks.uploaded;
            u.description = "updated while deleted";
            u.sessionId = session();
            UpdateImageAction.Result ur = u.call();
            Harness.truth(cr.error == null && ur.error == null, "ChangeImageState: " + (cr.error == null ? "ok" : cr.error.code)
                    + ", UpdateImage: " + (ur.error == null ? "ok" : ur.error.code));
        });
    }

    private ErrorCodeChecks() {}
}
