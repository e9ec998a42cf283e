public enum BillaVersion {
    public static let string = "0.1.0"
}
