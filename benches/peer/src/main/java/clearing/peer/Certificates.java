package clearing.peer;

import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.PublicKey;
import java.security.Signature;
import java.security.spec.X509EncodedKeySpec;
import java.util.HashMap;
import java.util.Map;

/**
 * The health PKI's rule (pipeline/src/pki/registry.rs, Pki::verify) with the JDK's crypto:
 * the certificate known, the professional's own, valid on the date of care and on the date of
 * receipt, unrevoked on the date of receipt, of the signature's algorithm, and the signature
 * over the canonical bytes verifies.
 */
final class Certificates {
  static final String RSA = "rsa-pkcs1-sha256";
  static final String ECDSA = "ecdsa-p256-sha256";

  /** A certificate of ref.pki, its key parsed once (ours parses each key once too). */
  record Cert(String id, String rpps, String alg, PublicKey key, int notBefore, int notAfter) {}

  /** Parsed keys by certificate id and the bytes they came from (a changed record re-parses). */
  private final Map<String, Map.Entry<byte[], Cert>> parsed = new HashMap<>();

  static Cert parse(String id, String rpps, String alg, byte[] spki, int notBefore, int notAfter)
      throws GeneralSecurityException {
    String family =
        switch (alg) {
          case RSA -> "RSA";
          case ECDSA -> "EC";
          default -> throw new GeneralSecurityException("unsupported algorithm " + alg);
        };
    PublicKey key = KeyFactory.getInstance(family).generatePublic(new X509EncodedKeySpec(spki));
    return new Cert(id, rpps, alg, key, notBefore, notAfter);
  }

  /** The certificate stored as {@code stored} (a ref.pki record's bytes), parsed at most once. */
  Cert cached(String id, byte[] stored, java.util.function.Function<byte[], Cert> parse) {
    Map.Entry<byte[], Cert> hit = parsed.get(id);
    if (hit != null && java.util.Arrays.equals(hit.getKey(), stored)) {
      return hit.getValue();
    }
    Cert cert = parse.apply(stored);
    parsed.put(id, Map.entry(stored, cert));
    return cert;
  }

  /**
   * Null when the signature holds; otherwise ours' reason code. Dates are days since the epoch;
   * {@code revokedOn} is null when the certificate is not revoked.
   */
  static String verify(
      Cert cert,
      Integer revokedOn,
      String rpps,
      String alg,
      int care,
      int receipt,
      byte[] message,
      byte[] signature) {
    if (!alg.equals(RSA) && !alg.equals(ECDSA)) {
      return "unsupported_algorithm";
    }
    if (cert == null) {
      return "unknown_certificate";
    }
    if (!cert.rpps().equals(rpps)) {
      return "certificate_other_professional";
    }
    if (care < cert.notBefore() || receipt > cert.notAfter() || care > cert.notAfter()) {
      return "certificate_not_valid";
    }
    if (revokedOn != null && revokedOn <= receipt) {
      return "certificate_revoked";
    }
    if (!alg.equals(cert.alg()) || !checks(cert, message, signature)) {
      return "bad_signature";
    }
    return null;
  }

  // One verifier per algorithm and thread (Signature objects are not thread-safe).
  private static final ThreadLocal<Signature> RSA_VERIFIER = verifier("SHA256withRSA");
  // ECDSA signatures are DER (ASN.1), the JDK's SHA256withECDSA form.
  private static final ThreadLocal<Signature> ECDSA_VERIFIER = verifier("SHA256withECDSA");

  private static ThreadLocal<Signature> verifier(String name) {
    return ThreadLocal.withInitial(
        () -> {
          try {
            return Signature.getInstance(name);
          } catch (GeneralSecurityException e) {
            throw new IllegalStateException(name, e);
          }
        });
  }

  private static boolean checks(Cert cert, byte[] message, byte[] signature) {
    try {
      Signature verifier = (cert.alg().equals(RSA) ? RSA_VERIFIER : ECDSA_VERIFIER).get();
      verifier.initVerify(cert.key());
      verifier.update(message);
      return verifier.verify(signature);
    } catch (GeneralSecurityException e) {
      return false;
    }
  }
}
