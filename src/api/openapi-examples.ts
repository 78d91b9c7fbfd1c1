/*
 * Request and response examples of ZStack's own API reference pages (the "Request Example" and
 * "Response Example" of SyncImageSize and CalculateImageHash), verbatim: the request bodies keep their
 * `<placeholders>` and the lower-case action key `calculateimagehash` (action keys are matched without
 * regard to case), the responses keep their numbers (2.097152E8 is 209715200).
 */

export interface SeedExample {
  api: string;
  request: Record<string, unknown>;
  response: Record<string, unknown>;
}

export const SEED_EXAMPLES: readonly SeedExample[] = [
  {
    api: 'SyncImageSize',
    request: { systemTags: ['<systemTags>'], userTags: ['<userTags>'] },
    response: {
      inventory: {
        uuid: 'a5288a2598074daabb0450db1eaf0e69',
        name: 'TinyLinux',
        size: 209715200,
        actualSize: 2329057,
        url: 'http://192.168.1.20/share/images/tinylinux.qcow2',
        mediaType: 'RootVolumeTemplate',
        platform: 'Linux',
        format: 'qcow2',
        backupStorageRefs: [
          {
            id: 0,
            imageUuid: 'a5288a2598074daabb0450db1eaf0e69',
            backupStorageUuid: '1a917c0b47c6475a996ed678f230419d',
            installPath: 'ceph://zs-images/f0b149e053b34c7eb7fe694b182ebffd',
            status: 'Ready',
          },
        ],
      },
    },
  },
  {
    api: 'CalculateImageHash',
    request: {
      calculateimagehash: { backupStorageUuid: '<backupStorageUuid>', algorithm: '<algorithm>' },
      systemTags: ['<systemTags>'],
      userTags: ['<userTags>'],
    },
    response: {
      inventory: {
        uuid: '368da584193638818c480bef63732659',
        name: 'TinyLinux',
        md5Sum: '6fc2357e711877c14c09eec960e51aed',
        url: 'http://192.168.1.20/share/images/tinylinux.qcow2',
        mediaType: 'RootVolumeTemplate',
        platform: 'Linux',
        format: 'qcow2',
        backupStorageRefs: [
          {
            id: 0,
            imageUuid: '368da584193638818c480bef63732659',
            backupStorageUuid: '17f9f8d310763247b5dc31779d880a41',
            installPath: 'ceph://zs-images/f0b149e053b34c7eb7fe694b182ebffd',
            status: 'Ready',
          },
        ],
      },
    },
  },
];
