/// AlignerKit's version.
public enum AlignerKitVersion {
    public static let string = "0.1.0"
}
