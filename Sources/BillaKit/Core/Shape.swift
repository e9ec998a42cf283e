/// Overflow-checked shape arithmetic. Shapes come from untrusted headers, so every product is checked.
public enum Shape {
    /// Number of elements, or nil when a dimension is negative or the product overflows.
    public static func elementCount(_ shape: [Int]) -> Int? {
        var n = 1
        for d in shape {
            guard d >= 0 else { return nil }
            let (p, o) = n.multipliedReportingOverflow(by: d)
            if o { return nil }
            n = p
        }
        return n
    }

    /// Bytes of a dense tensor, or nil on overflow (or, for a block-quantized dtype, when rows are not whole blocks).
    public static func byteCount(_ shape: [Int], _ dtype: DType) -> Int? {
        guard let n = elementCount(shape) else { return nil }
        if dtype.isQuantized, let cols = shape.last, cols % dtype.blockSize != 0 { return nil }
        return dtype.byteCount(elements: n)
    }

    /// Row-major (C order) strides in elements.
    public static func contiguousStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var acc = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[i] = acc
            acc &*= max(shape[i], 1)
        }
        return strides
    }

    public static func describe(_ shape: [Int]) -> String {
        "[" + shape.map(String.init).joined(separator: ", ") + "]"
    }
}
