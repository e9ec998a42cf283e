import CKernels

/// CRC-32 (ISO-HDLC, the ZIP one) of everything written into a `.bin`/`.pth`. The bytes go through CKernels, which
/// folds them with PCLMULQDQ when the CPU has it (memory speed) and uses slicing-by-8 otherwise.
struct CRC32 {
    private var crc: UInt32 = 0xFFFF_FFFF
    var value: UInt32 { crc ^ 0xFFFF_FFFF }

    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        crc = bk_crc32_update(crc, base, bytes.count)
    }

    /// Checksums `bytes` on a second thread while `work` (the write of the same bytes) runs on this one: the kernel's
    /// copy into the page cache and the checksum each take about as long, so overlapping them halves the cost.
    mutating func update(_ bytes: UnsafeRawBufferPointer, whileRunning work: () throws -> Void) throws {
        guard bytes.count >= 1 << 20 else { update(bytes); try work(); return }
        nonisolated(unsafe) var c = self
        try Parallel.forEach(2) { i in
            if i == 0 { try work() } else { c.updateUsingBothCores(bytes) }
        }
        self = c
    }

    /// Without PCLMULQDQ one core checksums slower than the disk writes, so large pieces are split in two halves on
    /// two threads and joined with zlib's crc32_combine. With it, one core is faster than the hand-off is worth.
    mutating func updateUsingBothCores(_ bytes: UnsafeRawBufferPointer) {
        guard bk_crc32_fast_path() == 0, bytes.count >= 1 << 20 else { update(bytes); return }
        let half = bytes.count / 2
        var a = self, b = CRC32()
        Parallel.forEach(2) { i in
            if i == 0 { a.update(UnsafeRawBufferPointer(rebasing: bytes[0..<half])) }
            else { b.update(UnsafeRawBufferPointer(rebasing: bytes[half...])) }
        }
        crc = CRC32.combine(a.value, b.value, length: bytes.count - half) ^ 0xFFFF_FFFF
    }

    /// zlib's crc32_combine: the CRC of A+B from CRC(A), CRC(B) and B's length, by squaring the GF(2) operator
    /// that appends zero bits.
    static func combine(_ crc1: UInt32, _ crc2: UInt32, length: Int) -> UInt32 {
        guard length > 0 else { return crc1 }
        func times(_ mat: [UInt32], _ vec: UInt32) -> UInt32 {
            var sum: UInt32 = 0, v = vec, i = 0
            while v != 0 { if v & 1 != 0 { sum ^= mat[i] }; v >>= 1; i += 1 }
            return sum
        }
        func square(_ mat: [UInt32]) -> [UInt32] { (0..<32).map { times(mat, mat[$0]) } }
        var odd = [UInt32](repeating: 0, count: 32)
        odd[0] = 0xEDB8_8320
        var row: UInt32 = 1
        for n in 1..<32 { odd[n] = row; row <<= 1 }
        var even = square(odd)
        odd = square(even)
        var c = crc1, len = length
        repeat {
            even = square(odd)
            if len & 1 != 0 { c = times(even, c) }
            len >>= 1
            if len == 0 { break }
            odd = square(even)
            if len & 1 != 0 { c = times(odd, c) }
            len >>= 1
        } while len != 0
        return c ^ crc2
    }
}
