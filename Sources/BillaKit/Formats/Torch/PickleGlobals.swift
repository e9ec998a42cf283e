/// The only globals a checkpoint's `data.pkl` may name. Anything else is refused by name before it could mean
/// anything: billa never imports or calls, it recognises these few and builds plain values from them.
public enum PickleGlobal: Equatable {
    case orderedDict
    case rebuildTensorV2
    case rebuildParameter
    case rebuildFromTypeV2
    case tensorClass
    case parameterClass
    case storageType(DType)

    var qualifiedName: String {
        switch self {
        case .orderedDict: return "collections.OrderedDict"
        case .rebuildTensorV2: return "torch._utils._rebuild_tensor_v2"
        case .rebuildParameter: return "torch._utils._rebuild_parameter"
        case .rebuildFromTypeV2: return "torch._tensor._rebuild_from_type_v2"
        case .tensorClass: return "torch.Tensor"
        case .parameterClass: return "torch.nn.parameter.Parameter"
        case .storageType(let d): return "torch.\(TorchStorageTypes.name(for: d) ?? d.rawValue)"
        }
    }

    static func resolve(module: String, name: String) -> PickleGlobal? {
        switch (module, name) {
        case ("collections", "OrderedDict"): return .orderedDict
        case ("torch._utils", "_rebuild_tensor_v2"): return .rebuildTensorV2
        case ("torch._utils", "_rebuild_parameter"): return .rebuildParameter
        case ("torch._tensor", "_rebuild_from_type_v2"): return .rebuildFromTypeV2
        case ("torch", "Tensor"): return .tensorClass
        case ("torch.nn.parameter", "Parameter"): return .parameterClass
        case ("torch", _):
            if let d = TorchStorageTypes.dtype(forStorage: name) { return .storageType(d) }
            return nil
        default: return nil
        }
    }
}

/// torch's legacy storage class names, which `torch.save` still writes into persistent ids.
public enum TorchStorageTypes {
    static let table: [(String, DType)] = [
        ("DoubleStorage", .f64), ("FloatStorage", .f32), ("HalfStorage", .f16), ("BFloat16Storage", .bf16),
        ("LongStorage", .i64), ("IntStorage", .i32), ("ShortStorage", .i16), ("CharStorage", .i8),
        ("ByteStorage", .u8), ("BoolStorage", .bool),
        ("Float8_e4m3fnStorage", .f8e4m3), ("Float8_e5m2Storage", .f8e5m2),
        ("UInt16Storage", .u16), ("UInt32Storage", .u32), ("UInt64Storage", .u64),
    ]

    static func dtype(forStorage name: String) -> DType? { table.first { $0.0 == name }?.1 }
    static func name(for dtype: DType) -> String? { table.first { $0.1 == dtype }?.0 }
}
