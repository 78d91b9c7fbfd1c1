import com.google.gson.JsonObject;
import com.sun.net.httpserver.HttpServer;
import org.zstack.sdk.*;

import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicReference;

import static java.util.Arrays.asList;

/** AddImage (file, http, upload), queries, measuring, progress and cancel, lifecycle, export. */
final class ImageChecks {
    static String qcowImage;  // disk.qcow2 on local storage
    static String rawImage;   // disk.raw over http onto SFTP
    static String twoCopies;  // disk.qcow2 on local + SFTP
    static String uploaded;   // up.qcow2 uploaded
    static HttpServer files;

    static String session() {
        return Harness.need(SdkCheck.session, "session");
    }

    static String img(String name) {
        return Path.of(Harness.need(SdkCheck.IMAGES, "SDKCHECK_IMAGES"), name).toString();
    }

    static ImageInventory add(String name, String url, List<String> storages, String format) {
        AddImageAction a = new AddImageAction();
        a.name = name;
        a.url = url;
        a.format = format;
        a.backupStorageUuids = storages;
        a.sessionId = session();
        AddImageAction.Result r = a.call();
        Harness.ok(r.error);
        return r.value.getInventory();
    }

    static QueryImageAction.Result query(String... conds) {
        QueryImageAction q = new QueryImageAction();
        q.conditions = asList(conds);
        q.sessionId = session();
        QueryImageAction.Result r = q.call();
        Harness.ok(r.error);
        return r.value == null ? null : r;
    }

    static ImageInventory one(String uuid) {
        return Harness.elem(query("uuid=" + uuid).value.getInventories(), 0, ImageInventory.class);
    }

    /** size = virtual-size of the source, actualSize = actual-size of the stored copy (qemu-img), md5Sum = openssl. */
    static void checkMeasured(ImageInventory inv, String source, String format) throws Exception {
        JsonObject src = Harness.qemuInfo(source);
        Harness.eq(format, inv.getFormat(), "format");
        Harness.eq("Ready", inv.getStatus(), "status");
        Harness.eq(src.get("virtual-size").getAsLong(), inv.getSize(), "size vs qemu-img virtual-size");
        long maxActual = 0;
        for (int i = 0; i < inv.getBackupStorageRefs().size(); i++) {
            ImageBackupStorageRefInventory ref = Harness.elem(inv.getBackupStorageRefs(), i, ImageBackupStorageRefInventory.class);
            if (ref.getInstallPath().startsWith("/")) {
                JsonObject copy = Harness.qemuInfo(ref.getInstallPath());
                maxActual = Math.max(maxActual, copy.get("actual-size").getAsLong());
                Harness.eq(src.get("virtual-size").getAsLong(), copy.get("virtual-size").getAsLong(), "copy's virtual size");
            }
        }
        if (maxActual > 0) Harness.eq(maxActual, inv.getActualSize(), "actualSize vs qemu-img actual-size of the stored copy");
        Harness.eq(Harness.dgst("md5", source), inv.getMd5Sum(), "md5Sum vs openssl dgst -md5");
    }

    static void run() throws Exception {
        files = Harness.fileServer(Path.of(Harness.need(SdkCheck.IMAGES, "SDKCHECK_IMAGES")), 4L << 20);
        String httpBase = "http://127.0.0.1:" + files.getAddress().getPort();
        try {
            addAndQuery(httpBase);
            measure();
            if (SdkCheck.cephBs != null) cephImages();
            progressAndCancel(httpBase);
            upload();
            exportChecks();
            lifecycle();
        } finally {
            files.stop(0);
        }
    }

    static void addAndQuery(String httpBase) {
        Harness.check("QueryImage matching nothing: empty list, no exception", () -> {
            QueryImageAction.Result r = query("name=no-such-image-" + UUID.randomUUID());
            Harness.eq(0, r.value.getInventories().size(), "inventories");
        });
        Harness.check("AddImage file:// qcow2 onto local: typed, size/actualSize = qemu-img, md5Sum = openssl", () -> {
            ImageInventory inv = add("sdk-qcow2", "file://" + img("disk.qcow2"), asList(Harness.need(SdkCheck.localBs, "local storage")), "qcow2");
            qcowImage = inv.getUuid();
            Harness.elem(inv.getBackupStorageRefs(), 0, ImageBackupStorageRefInventory.class);
            checkMeasured(inv, img("disk.qcow2"), "qcow2");
        });
        Harness.check("AddImage http:// raw onto SFTP: size/actualSize = qemu-img, md5Sum = openssl", () -> {
            ImageInventory inv = add("sdk-raw", httpBase + "/disk.raw", asList(Harness.need(SdkCheck.sftpBs, "sftp storage")), "raw");
            rawImage = inv.getUuid();
            ImageBackupStorageRefInventory ref = Harness.elem(inv.getBackupStorageRefs(), 0, ImageBackupStorageRefInventory.class);
            Harness.eq(SdkCheck.sftpBs, ref.getBackupStorageUuid(), "ref storage");
            checkMeasured(inv, img("disk.raw"), "raw");
        });
        Harness.check("AddImage onto two storages: backupStorageRefs[1] typed", () -> {
            ImageInventory inv = add("sdk-two", "file://" + img("disk.qcow2"), asList(SdkCheck.localBs, Harness.need(SdkCheck.sftpBs, "sftp storage")), "qcow2");
            twoCopies = inv.getUuid();
            Harness.eq(2, inv.getBackupStorageRefs().size(), "refs");
            Harness.elem(inv.getBackupStorageRefs(), 1, ImageBackupStorageRefInventory.class);
            checkMeasured(inv, img("disk.qcow2"), "qcow2");
        });
        Harness.check("QueryImage one: typed, refs typed", () -> {
            ImageInventory inv = one(Harness.need(qcowImage, "qcow2 image"));
            Harness.eq("sdk-qcow2", inv.getName(), "name");
            Harness.elem(inv.getBackupStorageRefs(), 0, ImageBackupStorageRefInventory.class);
        });
        Harness.check("QueryImage several: every element cast to ImageInventory, every ref typed", () -> {
            QueryImageAction.Result r = query("name?=sdk-qcow2,sdk-raw,sdk-two");
            List<?> l = r.value.getInventories();
            Harness.eq(3, l.size(), "images");
            for (int i = 0; i < l.size(); i++) {
                ImageInventory inv = Harness.elem(l, i, ImageInventory.class);
                for (int j = 0; j < inv.getBackupStorageRefs().size(); j++) {
                    Harness.elem(inv.getBackupStorageRefs(), j, ImageBackupStorageRefInventory.class);
                }
            }
        });
        Harness.check("QueryImage fields=uuid,name: typed, only those fields", () -> {
            QueryImageAction q = new QueryImageAction();
            q.conditions = asList("name?=sdk-qcow2,sdk-raw");
            q.fields = asList("uuid", "name");
            q.sessionId = session();
            QueryImageAction.Result r = q.call();
            Harness.ok(r.error);
            for (int i = 0; i < 2; i++) {
                ImageInventory inv = Harness.elem(r.value.getInventories(), i, ImageInventory.class);
                Harness.truth(inv.getUuid() != null && inv.getName() != null, "uuid and name set");
                Harness.truth(inv.getSize() == null && inv.getStatus() == null, "other fields absent");
            }
        });
        Harness.check("QueryImage count and replyWithCount, limit", () -> {
            QueryImageAction q = new QueryImageAction();
            q.conditions = asList("name?=sdk-qcow2,sdk-raw,sdk-two");
            q.count = true;
            q.sessionId = session();
            QueryImageAction.Result c = q.call();
            Harness.ok(c.error);
            Harness.eq(3L, c.value.getTotal(), "count");
            QueryImageAction p = new QueryImageAction();
            p.conditions = asList("name?=sdk-qcow2,sdk-raw,sdk-two");
            p.replyWithCount = true;
            p.limit = 1;
            p.sortBy = "name";
            p.sortDirection = "asc";
            p.sessionId = session();
            QueryImageAction.Result r = p.call();
            Harness.ok(r.error);
            Harness.eq(3L, r.value.getTotal(), "total");
            Harness.eq(1, r.value.getInventories().size(), "page size");
            Harness.eq("sdk-qcow2", Harness.elem(r.value.getInventories(), 0, ImageInventory.class).getName(), "first by name");
        });
    }

    static void measure() {
        Harness.check("SyncImageSize on a one-copy image: sizes = qemu-img", () -> {
            SyncImageSizeAction a = new SyncImageSizeAction();
            a.uuid = Harness.need(qcowImage, "qcow2 image");
            a.sessionId = session();
            SyncImageSizeAction.Result r = a.call();
            Harness.ok(r.error);
            checkMeasured(r.value.getInventory(), img("disk.qcow2"), "qcow2");
        });
        Harness.check("SyncImageSize on a two-copy image: refs typed, sizes = qemu-img", () -> {
            SyncImageSizeAction a = new SyncImageSizeAction();
            a.uuid = Harness.need(twoCopies, "two-copy image");
            a.sessionId = session();
            SyncImageSizeAction.Result r = a.call();
            Harness.ok(r.error);
            checkMeasured(r.value.getInventory(), img("disk.qcow2"), "qcow2");
        });
        for (String[] c : new String[][] {{"MD5", "md5", "local"}, {"SHA256", "sha256", "sftp"}, {"SHA512", "sha512", "sftp"}}) {
            Harness.check("CalculateImageHash " + c[0] + " on " + c[2] + ": md5Sum = openssl dgst -" + c[1], () -> {
                CalculateImageHashAction a = new CalculateImageHashAction();
                a.uuid = Harness.need(twoCopies, "two-copy image");
                a.backupStorageUuid = c[2].equals("local") ? SdkCheck.localBs : SdkCheck.sftpBs;
                a.algorithm = c[0];
                a.sessionId = session();
                CalculateImageHashAction.Result r = a.call();
                Harness.ok(r.error);
                Harness.eq(Harness.dgst(c[1], img("disk.qcow2")), r.value.getInventory().getMd5Sum(), "digest");
            });
        }
    }

    static void cephImages() {
        Harness.check("AddImage file:// qcow2 onto Ceph, CalculateImageHash SHA256 there: = qemu-img, openssl", () -> {
            ImageInventory inv = add("sdk-ceph", "file://" + img("disk.qcow2"), asList(SdkCheck.cephBs), "qcow2");
            ImageBackupStorageRefInventory ref = Harness.elem(inv.getBackupStorageRefs(), 0, ImageBackupStorageRefInventory.class);
            Harness.truth(ref.getInstallPath().startsWith("ceph://"), "installPath " + ref.getInstallPath());
            checkMeasured(inv, img("disk.qcow2"), "qcow2");
            CalculateImageHashAction a = new CalculateImageHashAction();
            a.uuid = inv.getUuid();
            a.backupStorageUuid = SdkCheck.cephBs;
            a.algorithm = "SHA256";
            a.sessionId = session();
            CalculateImageHashAction.Result r = a.call();
            Harness.ok(r.error);
            Harness.eq(Harness.dgst("sha256", img("disk.qcow2")), r.value.getInventory().getMd5Sum(), "digest");
        });
    }

    /** A throttled http import: its progress is read while it runs, then it is cancelled. */
    static void progressAndCancel(String httpBase) {
        String apiId = UUID.randomUUID().toString().replace("-", "");
        AtomicReference<AddImageAction.Result> result = new AtomicReference<>();
        Thread t = new Thread(() -> {
            AddImageAction a = new AddImageAction();
            a.name = "sdk-slow";
            a.url = httpBase + "/slow/big.raw";
            a.format = "raw";
            a.backupStorageUuids = asList(SdkCheck.localBs);
            a.sessionId = SdkCheck.session;
            a.apiId = apiId;
            result.set(a.call());
        });
        t.start();
        Harness.check("GetTaskProgress of a running AddImage: TaskProgressInventory typed", () -> {
            TaskProgressInventory p = null;
            for (int i = 0; i < 100 && p == null; i++) {
                Harness.sleep(100);
                GetTaskProgressAction g = new GetTaskProgressAction();
                g.apiId = apiId;
                g.sessionId = session();
                GetTaskProgressAction.Result r = g.call();
                Harness.ok(r.error);
                if (!r.value.getInventories().isEmpty()) {
                    TaskProgressInventory cand = Harness.elem(r.value.getInventories(), 0, TaskProgressInventory.class);
                    if (Integer.parseInt(cand.getContent()) > 0) p = cand;
                }
            }
            Harness.truth(p != null, "no progress above 0% within 10 s");
            int pct = Integer.parseInt(p.getContent());
            Harness.truth(pct > 0 && pct < 100, "content is a running percentage: " + pct);
        });
        Harness.check("CancelLongJob: the running AddImage ends with SYS.1017", () -> {
            CancelLongJobAction c = new CancelLongJobAction();
            c.uuid = apiId;
            c.sessionId = session();
            Harness.ok(c.call().error);
            t.join(60_000);
            AddImageAction.Result r = result.get();
            Harness.truth(r != null && r.error != null, "AddImage must fail after cancel");
            Harness.eq("SYS.1017", r.error.code, "AddImage error code after cancel");
        });
        Harness.check("CancelLongJob: no image left (QueryImage by name: empty)", () -> {
            Harness.eq(0, query("name=sdk-slow").value.getInventories().size(), "images named sdk-slow");
        });
    }

    static void upload() {
        AtomicReference<String> uploadUrl = new AtomicReference<>();
        Harness.check("AddImage upload://: an upload URL in inventory.url", () -> {
            ImageInventory inv = add("sdk-upload", "upload://up.qcow2", asList(Harness.need(SdkCheck.localBs, "local storage")), "qcow2");
            uploaded = inv.getUuid();
            Harness.truth(inv.getUrl() != null && inv.getUrl().startsWith("http"), "upload URL in inventory.url: " + inv.getUrl());
            uploadUrl.set(inv.getUrl());
        });
        Harness.check("GetUploadImageJobDetails: JobDetails typed, offset 0", () -> {
            GetUploadImageJobDetailsAction g = new GetUploadImageJobDetailsAction();
            g.imageId = Harness.need(uploaded, "upload image");
            g.sessionId = session();
            GetUploadImageJobDetailsAction.Result gr = g.call();
            Harness.ok(gr.error);
            JobDetails d = Harness.elem(gr.value.getExistingJobDetails(), 0, JobDetails.class);
            Harness.eq(uploaded, d.getImageUuid(), "job imageUuid");
            Harness.eq(0L, d.getOffset(), "offset before upload");
        });
        Harness.check("Upload PUT of the bytes: image Ready, sizes = qemu-img, md5Sum = openssl", () -> {
            HttpResponse<String> put = Harness.putFile(Harness.need(uploadUrl.get(), "upload URL"), Path.of(img("up.qcow2")), Map.of("X-Upload-Complete", "true"));
            Harness.truth(put.statusCode() == 200, "PUT answered " + put.statusCode() + " " + put.body());
            ImageInventory done = null;
            for (int i = 0; i < 100; i++) {
                done = one(uploaded);
                if ("Ready".equals(done.getStatus())) break;
                Harness.sleep(100);
            }
            checkMeasured(done, img("up.qcow2"), "qcow2");
        });
    }

    static void exportChecks() {
        AtomicReference<String> exported = new AtomicReference<>();
        Harness.check("ExportImageFromBackupStorage: bytes at imageUrl have exportMd5Sum = openssl", () -> {
            ExportImageFromBackupStorageAction a = new ExportImageFromBackupStorageAction();
            a.backupStorageUuid = Harness.need(SdkCheck.localBs, "local storage");
            a.imageUuid = Harness.need(qcowImage, "qcow2 image");
            a.sessionId = session();
            ExportImageFromBackupStorageAction.Result r = a.call();
            Harness.ok(r.error);
            String md5 = Harness.dgst("md5", img("disk.qcow2"));
            Harness.eq(md5, r.value.getExportMd5Sum(), "exportMd5Sum");
            String[] got = Harness.getMd5(r.value.getImageUrl());
            Harness.eq("200", got[0], "GET imageUrl status");
            Harness.eq(md5, got[1], "md5 of the exported bytes");
            exported.set(r.value.getImageUrl());
        });
        Harness.check("DeleteExportedImageFromBackupStorage: the URL answers 404", () -> {
            DeleteExportedImageFromBackupStorageAction a = new DeleteExportedImageFromBackupStorageAction();
            a.backupStorageUuid = SdkCheck.localBs;
            a.imageUuid = Harness.need(qcowImage, "qcow2 image");
            a.sessionId = session();
            Harness.ok(a.call().error);
            Harness.eq("404", Harness.getMd5(Harness.need(exported.get(), "export URL"))[0], "GET after delete");
        });
    }

    static void lifecycle() {
        Harness.check("ChangeImageState disable/enable", () -> {
            for (String[] ev : new String[][] {{"disable", "Disabled"}, {"enable", "Enabled"}}) {
                ChangeImageStateAction a = new ChangeImageStateAction();
                a.uuid = Harness.need(qcowImage, "qcow2 image");
                a.stateEvent = ev[0];
                a.sessionId = session();
                ChangeImageStateAction.Result r = a.call();
                Harness.ok(r.error);
                Harness.eq(ev[1], r.value.getInventory().getState(), "state");
            }
        });
        Harness.check("UpdateImage: name, description, guestOsType, platform", () -> {
            UpdateImageAction a = new UpdateImageAction();
            a.uuid = Harness.need(qcowImage, "qcow2 image");
            a.name = "sdk-qcow2-renamed";
            a.description = "desc";
            a.guestOsType = "Linux";
            a.platform = "Linux";
            a.sessionId = session();
            UpdateImageAction.Result r = a.call();
            Harness.ok(r.error);
            ImageInventory inv = r.value.getInventory();
            Harness.eq("sdk-qcow2-renamed", inv.getName(), "name");
            Harness.eq("desc", inv.getDescription(), "description");
            Harness.eq("Linux", inv.getPlatform(), "platform");
            Harness.eq("sdk-qcow2-renamed", one(qcowImage).getName(), "name read back");
        });
        Harness.check("SetImageBootMode UEFI", () -> {
            SetImageBootModeAction a = new SetImageBootModeAction();
            a.uuid = Harness.need(qcowImage, "qcow2 image");
            a.bootMode = "UEFI";
            a.sessionId = session();
            Harness.ok(a.call().error);
        });
        Harness.check("DeleteImage: copies Deleted; RecoverImage: Ready again (typed)", () -> {
            DeleteImageAction d = new DeleteImageAction();
            d.uuid = Harness.need(rawImage, "raw image");
            d.sessionId = session();
            Harness.ok(d.call().error);
            ImageInventory del = one(rawImage);
            Harness.eq("Deleted", del.getStatus(), "status after delete");
            RecoverImageAction r = new RecoverImageAction();
            r.imageUuid = rawImage;
            r.sessionId = session();
            RecoverImageAction.Result rr = r.call();
            Harness.ok(rr.error);
            Harness.eq("Ready", rr.value.getInventory().getStatus(), "status after recover");
            Harness.eq("Ready", Harness.elem(rr.value.getInventory().getBackupStorageRefs(), 0, ImageBackupStorageRefInventory.class).getStatus(), "ref status");
        });
        Harness.check("ExpungeImage naming a storage whose copy is not deleted: SYS.1007 (argerr in ZStack's ImageBase)", () -> {
            ExpungeImageAction e = new ExpungeImageAction();
            e.imageUuid = Harness.need(rawImage, "raw image");
            e.backupStorageUuids = asList(SdkCheck.sftpBs);
            e.sessionId = session();
            Harness.expectCode(e.call().error, "SYS.1007");
        });
        Harness.check("RecoverImage naming a storage whose copy is not deleted: SYS.1007 (argerr in ZStack's ImageBase)", () -> {
            DeleteImageAction d = new DeleteImageAction();
            d.uuid = Harness.need(twoCopies, "two-copy image");
            d.backupStorageUuids = asList(SdkCheck.localBs);
            d.sessionId = session();
            Harness.ok(d.call().error);
            RecoverImageAction r = new RecoverImageAction();
            r.imageUuid = twoCopies;
            r.backupStorageUuids = asList(SdkCheck.sftpBs);
            r.sessionId = session();
            Harness.expectCode(r.call().error, "SYS.1007");
        });
        Harness.check("ExpungeImage of an image not deleted anywhere: SYS.1006 (operr in ZStack's ImageBase)", () -> {
            ExpungeImageAction e = new ExpungeImageAction();
            e.imageUuid = Harness.need(rawImage, "raw image");
            e.sessionId = session();
            Harness.expectCode(e.call().error, "SYS.1006");
        });
        Harness.check("DeleteImage + ExpungeImage: the stored bytes are removed", () -> {
            String path = Harness.elem(one(Harness.need(rawImage, "raw image")).getBackupStorageRefs(), 0, ImageBackupStorageRefInventory.class).getInstallPath();
            Harness.truth(new java.io.File(path).exists(), "copy on disk before: " + path);
            DeleteImageAction d = new DeleteImageAction();
            d.uuid = rawImage;
            d.sessionId = session();
            Harness.ok(d.call().error);
            ExpungeImageAction e = new ExpungeImageAction();
            e.imageUuid = rawImage;
            e.sessionId = session();
            Harness.ok(e.call().error);
            Harness.truth(!new java.io.File(path).exists(), "bytes removed: " + path);
        });
        Harness.check("ExpungeImage: QueryImage by uuid is empty", () -> {
            Harness.eq(0, query("uuid=" + Harness.need(rawImage, "raw image")).value.getInventories().size(), "images left");
        });
    }

    private ImageChecks() {}
}
