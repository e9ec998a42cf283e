/// Values the restricted unpickler can produce. Lists and dicts are classes because pickle mutates them after they
/// are memoised (APPEND, SETITEM on a memo reference).
public indirect enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case tuple([PickleValue])
    case list(PickleList)
    case dict(PickleDict)
    /// An allowlisted global, resolved to what billa knows it means.
    case global(PickleGlobal)
    /// A `torch.save` storage reference: persistent id ('storage', type, key, location, numel).
    case storage(TorchStorageRef)
    /// The result of `_rebuild_tensor_v2` and friends.
    case tensor(TorchTensorRef)

    var typeName: String {
        switch self {
        case .none: return "None"
        case .bool: return "bool"
        case .int: return "int"
        case .float: return "float"
        case .string: return "str"
        case .bytes: return "bytes"
        case .tuple: return "tuple"
        case .list: return "list"
        case .dict: return "dict"
        case .global(let g): return "global \(g.qualifiedName)"
        case .storage: return "storage"
        case .tensor: return "tensor"
        }
    }
}

public final class PickleList {
    var items: [PickleValue] = []
}

/// An insertion-ordered dictionary, as both `dict` and `OrderedDict` are in Python 3.7+.
public final class PickleDict {
    var keys: [PickleValue] = []
    var values: [PickleValue] = []
    private var stringIndex: [String: Int] = [:]

    func set(_ key: PickleValue, _ value: PickleValue) {
        if case .string(let k) = key {
            if let i = stringIndex[k] { values[i] = value; return }
            stringIndex[k] = keys.count
        }
        keys.append(key)
        values.append(value)
    }
}

public struct TorchStorageRef {
    public let dtype: DType
    public let key: String
    public let elementCount: Int
}

public struct TorchTensorRef {
    public let storage: TorchStorageRef
    public let elementOffset: Int
    public let shape: [Int]
    public let strides: [Int]
}
