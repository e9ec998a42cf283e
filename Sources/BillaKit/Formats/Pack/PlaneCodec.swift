import CKernels

/// The byte-plane splits of formats/pack.md 5.2 and their inverses, over raw memory. The bodies are C
/// (CKernels/planes.c) with AVX-512BW and AVX2 versions chosen at run time; each pass also computes the chunk's
/// XXH64, so the bytes are hashed while they are in cache.
enum PlaneCodec {
    /// Splits `src` into planes `planes + p * planeSize` (`.none`: a copy) and returns XXH64 of `src`.
    static func split(_ t: PlaneTransform, _ src: UnsafeRawBufferPointer, into planes: UnsafeMutableRawPointer, planeSize: Int) -> UInt64 {
        let b = planes.assumingMemoryBound(to: UInt8.self)
        let n = t.planeCount
        return bk_planes_split(Int32(t.rawValue), src.baseAddress, src.count, b, n > 1 ? b + planeSize : nil,
                               n > 2 ? b + 2 * planeSize : nil, n > 3 ? b + 3 * planeSize : nil, 1)
    }

    /// Re-assembles `count` bytes into `dst` from the planes (each `count / elementSize` bytes, or `count` for
    /// `.none`, where `p0` may be `dst`) and returns XXH64 of the result. Planes are separate pointers so raw planes
    /// are read straight from the mapped file.
    static func merge(_ t: PlaneTransform, _ p0: UnsafeRawPointer?, _ p1: UnsafeRawPointer?, _ p2: UnsafeRawPointer?, _ p3: UnsafeRawPointer?,
                      into dst: UnsafeMutableRawPointer, count: Int) -> UInt64 {
        func u8(_ p: UnsafeRawPointer?) -> UnsafePointer<UInt8>? { p?.assumingMemoryBound(to: UInt8.self) }
        return bk_planes_merge(Int32(t.rawValue), u8(p0), u8(p1), u8(p2), u8(p3), dst, count, 1)
    }

    /// Bytes of a plane the entropy test looks at: it only decides whether to try zstd, and the start of a plane
    /// tells noise from structure as well as the whole does.
    static let entropySample = 64 << 10

    /// Order-0 entropy in bits per byte of the plane's first `entropySample` bytes: planes above ~7.9 are noise that
    /// zstd cannot shrink, so the writer stores them raw without spending time on a match search.
    static func entropy(_ p: UnsafeRawBufferPointer) -> Double {
        bk_byte_entropy(p.baseAddress, min(p.count, entropySample))
    }
}
