package clearing.peer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.LocalDate;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.junit.jupiter.api.Test;

/**
 * The peer against records our Rust code wrote. The fixture is the head of a load-test corpus:
 * {@code clearing loadtest --claims 2000 --corpus DIR ...} (seed 1) wrote DIR/submitted.bin
 * (fse_id, key, single-object fse.submitted, stamp, each length-prefixed) and DIR/pki.jsonl;
 * src/test/resources/fixture holds its first 60 claims and the whole PKI.
 */
class ClaimsTest {
  record Wire(String fseId, byte[] key, byte[] value) {}

  static List<Wire> wire() throws IOException {
    List<Wire> out = new ArrayList<>();
    try (InputStream raw = ClaimsTest.class.getResourceAsStream("/fixture/submitted.bin");
        DataInputStream in = new DataInputStream(raw)) {
      in.readNBytes(4);
      while (in.available() > 0) {
        String id = new String(in.readNBytes(in.readInt()), StandardCharsets.UTF_8);
        byte[] key = in.readNBytes(in.readInt());
        byte[] value = in.readNBytes(in.readInt());
        in.readLong();
        out.add(new Wire(id, key, value));
      }
    }
    return out;
  }

  static String field(String json, String name) {
    Matcher m = Pattern.compile("\"" + name + "\":\"([^\"]*)\"").matcher(json);
    return m.find() ? m.group(1) : null;
  }

  static int day(String iso) {
    return (int) LocalDate.parse(iso).toEpochDay();
  }

  /** The fixture's certificates and revocations, parsed from pki.jsonl. */
  static Map<String, Certificates.Cert> certs = new HashMap<>();

  static Map<String, Integer> revocations = new HashMap<>();

  static void loadPki() throws Exception {
    if (!certs.isEmpty()) {
      return;
    }
    try (InputStream in = ClaimsTest.class.getResourceAsStream("/fixture/pki.jsonl")) {
      for (String line : new String(in.readAllBytes(), StandardCharsets.UTF_8).split("\n")) {
        if (line.contains("\"kind\":\"certificate\"")) {
          String id = field(line, "id");
          certs.put(
              id,
              Certificates.parse(
                  id,
                  field(line, "rpps"),
                  field(line, "alg"),
                  Base64.getDecoder().decode(field(line, "public_key")),
                  day(field(line, "not_before")),
                  day(field(line, "not_after"))));
        } else if (line.contains("\"kind\":\"revocation\"")) {
          revocations.merge(field(line, "cert"), day(field(line, "revoked_on")), Math::min);
        }
      }
    }
  }

  static String verify(Claims claims, GenericRecord fse, byte[] message) {
    GenericRecord sig = (GenericRecord) fse.get("signature");
    ByteBuffer value = (ByteBuffer) sig.get("value");
    byte[] signature = new byte[value.remaining()];
    value.duplicate().get(signature);
    String certId = sig.get("cert").toString();
    return Certificates.verify(
        certs.get(certId),
        revocations.get(certId),
        ((GenericRecord) fse.get("professional")).get("rpps").toString(),
        sig.get("alg").toString(),
        (Integer) fse.get("care_date"),
        Claims.receiptDay(fse),
        message,
        signature);
  }

  @Test
  void decodesOurRecordsAndTheirFingerprint() throws Exception {
    Claims claims = new Claims();
    for (Wire w : wire()) {
      GenericRecord fse = claims.decodeSubmitted(w.value());
      assertEquals(w.fseId(), fse.get("fse_id").toString());
    }
    byte[] fingerprint = new byte[8];
    ByteBuffer.wrap(fingerprint)
        .order(java.nio.ByteOrder.LITTLE_ENDIAN)
        // The fixture was written before prescriptions: under fse.submitted.v2.
        .putLong(SchemaNormalization.parsingFingerprint64(Schemas.SUBMITTED_V2));
    byte[] first = wire().get(0).value();
    assertArrayEquals(fingerprint, java.util.Arrays.copyOfRange(first, 2, 10));
  }

  @Test
  void anUnknownFingerprintIsABadRecordNotACrash() throws Exception {
    byte[] value = wire().get(0).value().clone();
    value[5] ^= 0x55;
    assertThrows(Claims.BadRecord.class, () -> new Claims().decodeSubmitted(value));
    assertThrows(Claims.BadRecord.class, () -> new Claims().decodeSubmitted(new byte[] {1, 2}));
  }

  /**
   * The canonical bytes re-encoded in Java are those our code signed: the signatures verify
   * with the JDK (RSA and ECDSA alike), and one flipped bit of the message breaks them.
   */
  @Test
  void ourSignaturesVerifyOverTheJavaCanonicalBytes() throws Exception {
    loadPki();
    Claims claims = new Claims();
    int verified = 0;
    int rsa = 0;
    int tamperedCaught = 0;
    List<String> failures = new ArrayList<>();
    for (Wire w : wire()) {
      GenericRecord fse = claims.decodeSubmitted(w.value());
      byte[] message = claims.canonicalBytes(fse);
      // The signed form's header names fse.submitted.v1, not the current schema.
      assertEquals(
          SchemaNormalization.parsingFingerprint64(Schemas.SIGNED_FORM),
          ByteBuffer.wrap(message, 2, 8).order(java.nio.ByteOrder.LITTLE_ENDIAN).getLong());
      assertTrue(fse.get("signature") != null, "the signature is put back");
      String code = verify(claims, fse, message);
      if (code == null) {
        verified++;
        if (((GenericRecord) fse.get("signature")).get("alg").toString().equals(Certificates.RSA)) {
          rsa++;
        }
        byte[] tampered = message.clone();
        tampered[tampered.length - 1] ^= 1;
        if ("bad_signature".equals(verify(claims, fse, tampered))) {
          tamperedCaught++;
        }
      } else {
        failures.add(w.fseId() + ": " + code);
      }
    }
    // The corpus makes about 2 % bad claims of 18 kinds; a few of the 60 may be signature ones.
    assertTrue(verified >= 55, "verified " + verified + " of 60; failures " + failures);
    assertTrue(rsa >= 1, "the mix holds RSA signatures too");
    assertEquals(verified, tamperedCaught);
  }

  /**
   * A billing identifier is the last part of the canonical bytes, as docs/signatures.md lays it
   * out and pipeline/src/signatures.rs writes it: the union's branch 1, the kind's index
   * (FINESS: 1), the id as an Avro string; an FSE without one signs the bytes it did before.
   */
  @Test
  void aBillingIdentifierIsSignedLast() throws Exception {
    Claims claims = new Claims();
    GenericRecord fse = claims.decodeSubmitted(wire().get(0).value());
    GenericRecord professional = (GenericRecord) fse.get("professional");
    assertNull(professional.get("billing"), "the corpus names no billing identifier");
    byte[] bare = claims.canonicalBytes(fse);
    Schema billingSchema = professional.getSchema().getField("billing").schema().getTypes().get(1);
    GenericRecord billing = new GenericData.Record(billingSchema);
    billing.put("kind", new GenericData.EnumSymbol(billingSchema.getField("kind").schema(), "FINESS"));
    billing.put("id", "750000010");
    professional.put("billing", billing);
    byte[] billed = claims.canonicalBytes(fse);
    byte[] tail = "\u0002\u0002\u0012750000010".getBytes(StandardCharsets.US_ASCII);
    byte[] expected = java.util.Arrays.copyOf(bare, bare.length + tail.length);
    System.arraycopy(tail, 0, expected, bare.length, tail.length);
    assertArrayEquals(expected, billed);
  }

  /**
   * Renewals are the last part of the canonical bytes when a prescription says them, as
   * docs/signatures.md lays them out and pipeline/src/signatures.rs writes them: every line's
   * union, branch 1 and the zigzag int for the renewable one, branch 0 for the others.
   */
  @Test
  void renewalsAreSignedLast() throws Exception {
    Claims claims = new Claims();
    GenericRecord fse = claims.decodeSubmitted(wire().get(0).value());
    @SuppressWarnings("unchecked")
    List<GenericRecord> acts = (List<GenericRecord>) fse.get("acts");
    GenericRecord line = acts.get(0);
    Schema prescriptionSchema = line.getSchema().getField("prescription").schema().getTypes().get(1);
    GenericRecord prescription = new GenericData.Record(prescriptionSchema);
    prescription.put(
        "prescriber_kind",
        new GenericData.EnumSymbol(prescriptionSchema.getField("prescriber_kind").schema(), "RPPS"));
    prescription.put("prescriber_id", "10000123454");
    prescription.put("date", 20_000);
    line.put("prescription", prescription);
    byte[] bare = claims.canonicalBytes(fse);
    prescription.put("renewals", 5);
    byte[] renewable = claims.canonicalBytes(fse);
    byte[] tail = new byte[acts.size() + 1];
    tail[0] = 2;
    tail[1] = 10;
    byte[] expected = java.util.Arrays.copyOf(bare, bare.length + tail.length);
    System.arraycopy(tail, 0, expected, bare.length, tail.length);
    assertArrayEquals(expected, renewable);
  }

  @Test
  void nirKeysAndTheTimeBar() {
    assertTrue(Claims.nirValid("185057800608491"));
    assertFalse(Claims.nirValid("185057800608492"));
    assertFalse(Claims.nirValid("1850578006084"));
    // Care on 2024-02-29: in time up to 2026-03-31, barred from 2026-04-01 (rules/general.toml).
    assertEquals(day("2026-04-01"), Claims.barredFrom(day("2024-02-29")));
  }

  @Test
  void theFlatFeeKeepsToTheDayAndYearCaps() throws Exception {
    Claims claims = new Claims();
    GenericRecord gp = null;
    for (Wire w : wire()) {
      GenericRecord fse = claims.decodeSubmitted(w.value());
      String category = ((GenericRecord) fse.get("professional")).get("category").toString();
      if (category.equals("GP")) {
        gp = fse;
        break;
      }
    }
    assertTrue(gp != null, "the fixture has a GP's claim");
    Claims.Amounts first = Claims.reimburse(gp, 0, 0);
    assertEquals(Claims.FLAT_FEE_CENTS, first.fee());
    assertEquals(1, first.dayFees());
    assertEquals(0, Claims.reimburse(gp, Claims.DAY_FEES_CAP, 0).fee());
    assertEquals(0, Claims.reimburse(gp, 0, Claims.YEAR_FEE_CAP_CENTS).fee());
    assertEquals(50, Claims.reimburse(gp, 0, Claims.YEAR_FEE_CAP_CENTS - 50).fee());
    assertNull(Claims.route(gp).code());
  }
}
