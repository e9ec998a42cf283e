/// The ZIP facts billa relies on (APPNOTE.TXT 6.3). One table, so the reader has no magic numbers of its own.
enum ZipLayout {
    static let localHeaderSignature: UInt32 = 0x0403_4b50
    static let centralHeaderSignature: UInt32 = 0x0201_4b50
    static let endOfCentralDirectorySignature: UInt32 = 0x0605_4b50
    static let zip64EndSignature: UInt32 = 0x0606_4b50
    static let zip64LocatorSignature: UInt32 = 0x0706_4b50

    static let localHeaderSize = 30
    static let centralHeaderSize = 46
    static let endOfCentralDirectorySize = 22
    static let zip64LocatorSize = 20
    static let zip64EndMinimumSize = 56
    static let maxCommentLength = 0xFFFF

    /// Header ID of the extra field that carries 64-bit sizes and offsets.
    static let zip64ExtraID: UInt16 = 0x0001
    static let methodStored: UInt16 = 0
    static let flagEncrypted: UInt16 = 1 << 0
}
