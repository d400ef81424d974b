package clearing.peer;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.time.Instant;
import java.time.LocalDate;
import java.time.ZoneId;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.List;
import org.apache.avro.AvroRuntimeException;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.EncoderFactory;
import org.apache.avro.message.BinaryMessageEncoder;

/**
 * The peer's rules, as pure functions of the record and what the stores returned: the Kafka
 * Streams processors (Steps) do the reads and writes. Reason codes are ours'
 * (pipeline/src/domain/reason.rs); which of our rules are left out is in docs/performance.md,
 * "Against Kafka Streams".
 */
final class Claims {
  /** The peer's rules are one fixed set: every decision names it. */
  static final String RULE_VERSION = "peer-2026-12-06";
  /** The insurer's seat: its date of receipt is the stamp's date there (pipeline/src/clock.rs). */
  private static final ZoneId INSURER = ZoneId.of("Europe/Paris");

  /** Flat fee per claim of a consultation-like category, the day's and the year's caps. */
  static final long FLAT_FEE_CENTS = 200;

  static final int DAY_FEES_CAP = 4;
  static final long YEAR_FEE_CAP_CENTS = 5000;

  private final BinaryMessageDecoder<GenericRecord> submitted =
      new BinaryMessageDecoder<>(GenericData.get(), Schemas.SUBMITTED);
  private final BinaryMessageEncoder<GenericRecord> signedForm =
      new BinaryMessageEncoder<>(GenericData.get(), Schemas.SIGNED_FORM);
  private final BinaryMessageDecoder<GenericRecord> rights =
      new BinaryMessageDecoder<>(GenericData.get(), Schemas.RIGHTS);
  private final BinaryMessageDecoder<GenericRecord> pki =
      new BinaryMessageDecoder<>(GenericData.get(), Schemas.PKI);
  private final BinaryMessageEncoder<GenericRecord> decisions =
      new BinaryMessageEncoder<>(GenericData.get(), Schemas.DECISION);
  private final ByteArrayOutputStream buffer = new ByteArrayOutputStream(1024);
  private final int signaturePos = Schemas.SUBMITTED.getField("signature").pos();
  /**
   * A line's prescription field (a union with null), as it follows the signed form: as v3 writes
   * it, without its foreign ePrescription.
   */
  private final GenericDatumWriter<Object> prescriptionWriter =
      new GenericDatumWriter<>(
          Schemas.SUBMITTED_V3
              .getField("acts")
              .schema()
              .getElementType()
              .getField("prescription")
              .schema());
  /** A prescription's foreign ePrescription (a union with null), as it follows the prescriptions. */
  private final GenericDatumWriter<Object> foreignWriter =
      new GenericDatumWriter<>(prescriptionField("foreign"));
  /** The professional's billing identifier (a union with null), after the prescriptions. */
  private final GenericDatumWriter<Object> billingWriter =
      new GenericDatumWriter<>(
          Schemas.SUBMITTED.getField("professional").schema().getField("billing").schema());
  /** A prescription's renewals (a union with null), the signed bytes' last part. */
  private final GenericDatumWriter<Object> renewalsWriter =
      new GenericDatumWriter<>(prescriptionField("renewals"));

  private BinaryEncoder tail;

  /** A field of an act line's prescription record (the second branch of its union with null). */
  private static Schema prescriptionField(String name) {
    return Schemas.SUBMITTED
        .getField("acts")
        .schema()
        .getElementType()
        .getField("prescription")
        .schema()
        .getTypes()
        .get(1)
        .getField(name)
        .schema();
  }

  Claims() {
    // Records written before prescriptions resolve into the current schema (prescription null).
    submitted.addSchema(Schemas.SUBMITTED_V2);
    // Records without a foreign ePrescription are written in v3 (foreign null).
    submitted.addSchema(Schemas.SUBMITTED_V3);
    // Records without a billing identifier but with a foreign ePrescription in v4 (billing null).
    submitted.addSchema(Schemas.SUBMITTED_V4);
    // Records without renewals but with a billing identifier in v5 (renewals null).
    submitted.addSchema(Schemas.SUBMITTED_V5);
  }

  /** A record that is not a single-object fse.submitted of a known schema. */
  static final class BadRecord extends Exception {
    BadRecord(String message) {
      super(message);
    }
  }

  /** Decodes a single-object record, its fingerprint checked against the schema's. */
  GenericRecord decodeSubmitted(byte[] value) throws BadRecord {
    return decode(submitted, value);
  }

  GenericRecord decodeRights(byte[] value) throws BadRecord {
    return decode(rights, value);
  }

  GenericRecord decodePki(byte[] value) throws BadRecord {
    return decode(pki, value);
  }

  private static GenericRecord decode(BinaryMessageDecoder<GenericRecord> decoder, byte[] value)
      throws BadRecord {
    try {
      return decoder.decode(value);
    } catch (IOException | AvroRuntimeException | IndexOutOfBoundsException e) {
      throw new BadRecord(e.getClass().getSimpleName() + ": " + e.getMessage());
    }
  }

  /**
   * The canonical signed bytes: the signed form (fse.submitted.v1, whose fields are the current
   * schema's up to signature, in the same order) with signature null, single-object encoded;
   * when a line carries a prescription, every line's prescription field follows, in line order,
   * without its foreign ePrescription, and when a line carries one, every line's foreign
   * ePrescription after them; then, when the professional names a billing identifier, its billing
   * field; last, when a prescription says renewals, every line's renewals (null without)
   * (pipeline/src/signatures.rs).
   */
  byte[] canonicalBytes(GenericRecord fse) {
    Object signature = fse.get(signaturePos);
    fse.put(signaturePos, null);
    try {
      buffer.reset();
      signedForm.encode(fse, buffer);
      @SuppressWarnings("unchecked")
      List<GenericRecord> acts = (List<GenericRecord>) fse.get("acts");
      if (acts.stream().anyMatch(line -> line.get("prescription") != null)) {
        tail = EncoderFactory.get().directBinaryEncoder(buffer, tail);
        for (GenericRecord line : acts) {
          prescriptionWriter.write(line.get("prescription"), tail);
        }
        if (acts.stream().anyMatch(line -> foreign(line) != null)) {
          for (GenericRecord line : acts) {
            foreignWriter.write(foreign(line), tail);
          }
        }
        tail.flush();
      }
      Object billing = ((GenericRecord) fse.get("professional")).get("billing");
      if (billing != null) {
        tail = EncoderFactory.get().directBinaryEncoder(buffer, tail);
        billingWriter.write(billing, tail);
        tail.flush();
      }
      if (acts.stream().anyMatch(line -> renewals(line) != null)) {
        tail = EncoderFactory.get().directBinaryEncoder(buffer, tail);
        for (GenericRecord line : acts) {
          renewalsWriter.write(renewals(line), tail);
        }
        tail.flush();
      }
      return buffer.toByteArray();
    } catch (IOException e) {
      throw new IllegalStateException("encoding into memory", e);
    } finally {
      fse.put(signaturePos, signature);
    }
  }

  /** A line's prescription's renewals, or null. */
  private static Object renewals(GenericRecord line) {
    GenericRecord prescription = (GenericRecord) line.get("prescription");
    return prescription == null ? null : prescription.get("renewals");
  }

  /** A line's foreign ePrescription, or null. */
  private static Object foreign(GenericRecord line) {
    GenericRecord prescription = (GenericRecord) line.get("prescription");
    return prescription == null ? null : prescription.get("foreign");
  }

  byte[] encodeDecision(GenericRecord decision) {
    try {
      buffer.reset();
      decisions.encode(decision, buffer);
      return buffer.toByteArray();
    } catch (IOException e) {
      throw new IllegalStateException("encoding into memory", e);
    }
  }

  /** The insurer's date of receipt (days since the epoch); unstamped: the date of care. */
  static int receiptDay(GenericRecord fse) {
    Object stamp = fse.get("ingested_at_millis");
    if (stamp == null) {
      return (Integer) fse.get("care_date");
    }
    return (int) Instant.ofEpochMilli((Long) stamp).atZone(INSURER).toLocalDate().toEpochDay();
  }

  /** The sender's date of receipt: received_at in the offset it was stamped with. */
  static int receivedAtDay(GenericRecord fse) {
    long millis = (Long) fse.get("received_at_millis");
    int offset = (Integer) fse.get("received_offset_minutes");
    return (int) Instant.ofEpochMilli(millis).atOffset(ZoneOffset.UTC).plusMinutes(offset)
        .toLocalDate()
        .toEpochDay();
  }

  static String text(Object value) {
    return value == null ? null : value.toString();
  }

  /**
   * The checks of the FSE's own fields and dates (ours: validation's parse and check_dates):
   * null when they pass, else the first reason code.
   */
  static String checkFields(GenericRecord fse, int receipt) {
    GenericRecord beneficiary = (GenericRecord) fse.get("beneficiary");
    if (beneficiary != null && !nirValid(text(beneficiary.get("nir")))) {
      return "invalid_nir";
    }
    @SuppressWarnings("unchecked")
    List<GenericRecord> acts = (List<GenericRecord>) fse.get("acts");
    if (acts.isEmpty()) {
      return "no_act_lines";
    }
    for (GenericRecord act : acts) {
      if ((Long) act.get("charged_cents") < 0
          || negative(act.get("base_cents"))
          || negative(act.get("unit_price_cents"))) {
        return "invalid_amount";
      }
      if ((Integer) act.get("quantity") <= 0) {
        return "invalid_quantity";
      }
    }
    int care = (Integer) fse.get("care_date");
    if (care > receivedAtDay(fse) || care > receipt) {
      return "care_date_after_receipt";
    }
    if (receipt >= barredFrom(care)) {
      return "claim_time_barred";
    }
    return null;
  }

  private static boolean negative(Object cents) {
    return cents != null && (Long) cents < 0;
  }

  /** Art. L.332-1 CSS: barred two years from the first day of the quarter after the care. */
  static int barredFrom(int care) {
    LocalDate day = LocalDate.ofEpochDay(care);
    int quarterMonth = ((day.getMonthValue() - 1) / 3) * 3 + 1;
    return (int)
        LocalDate.of(day.getYear(), quarterMonth, 1).plusMonths(3).plusYears(2).toEpochDay();
  }

  /** A NIR: 13-character body (2A/2B counted as 19/18) and its mod-97 key (ids/nir.rs). */
  static boolean nirValid(String nir) {
    if (nir == null) {
      return false;
    }
    String s = nir.replace(" ", "");
    if (s.length() != 15) {
      return false;
    }
    String body = s.substring(0, 13).replace("2A", "19").replace("2B", "18");
    char sex = body.charAt(0);
    if (sex < '1' || sex > '8') {
      return false;
    }
    long m = 0;
    for (int i = 0; i < 13; i++) {
      char c = body.charAt(i);
      if (c < '0' || c > '9') {
        return false;
      }
      m = (m * 10 + (c - '0')) % 97;
    }
    int month = (body.charAt(3) - '0') * 10 + (body.charAt(4) - '0');
    if (month == 0 || (month >= 13 && month <= 19)) {
      return false;
    }
    String key = s.substring(13);
    return key.chars().allMatch(Character::isDigit) && Integer.parseInt(key) == 97 - m;
  }

  /** What entitlement found: null code when covered, with the fund that pays. */
  record Entitlement(String code, String fund) {}

  /** Ours' entitlement on the rights record (null: no rights for the key). */
  static Entitlement entitle(GenericRecord fse, GenericRecord rights) {
    if (rights == null) {
      return new Entitlement("unknown_beneficiary", null);
    }
    int care = (Integer) fse.get("care_date");
    String fund = null;
    for (Object o : (List<?>) rights.get("coverage")) {
      GenericRecord coverage = (GenericRecord) o;
      if (covers(coverage, care)) {
        fund = text(coverage.get("fund"));
        break;
      }
    }
    // AME (state medical aid) entitles without a coverage period, as ours.
    if (fund == null
        && ((List<?>) rights.get("ame")).stream().anyMatch(p -> covers((GenericRecord) p, care))) {
      fund = "AME";
    }
    if (fund == null) {
      return new Entitlement("not_covered_on_care_date", null);
    }
    boolean ald = false;
    for (Object o : (List<?>) fse.get("acts")) {
      ald |= (Boolean) ((GenericRecord) o).get("ald_related");
    }
    if (ald && ((List<?>) rights.get("ald")).stream().noneMatch(p -> covers((GenericRecord) p, care))) {
      return new Entitlement("exoneration_not_found", fund);
    }
    return new Entitlement(null, fund);
  }

  private static boolean covers(GenericRecord period, int day) {
    Object to = period.get("to");
    return (Integer) period.get("from") <= day && (to == null || day <= (Integer) to);
  }

  /** Routing: DOMESTIC, or EU for a visitor's card; a reason code when the card cannot be billed. */
  record Route(String code, String route) {}

  static Route route(GenericRecord fse) {
    GenericRecord ehic = (GenericRecord) fse.get("ehic");
    if (ehic == null) {
      return new Route(null, "DOMESTIC");
    }
    String country = text(ehic.get("country"));
    if ("FR".equals(country)) {
      return new Route("ehic_french_card", null);
    }
    if ((Integer) ehic.get("expiry") < (Integer) fse.get("care_date")) {
      return new Route("ehic_expired", null);
    }
    return new Route(null, "EU:" + country);
  }

  /** What the reimbursement step computes before the counters' writes. */
  record Amounts(long charged, long reimbursed, long fee, int dayFees, long yearFees) {}

  /**
   * Charged and reimbursed (70 %, 100 % for an ALD act), less a flat fee per consultation-like
   * claim within the day's and the year's caps, from the counters as read.
   */
  static Amounts reimburse(GenericRecord fse, int dayFeesBefore, long yearFeesBefore) {
    long charged = 0;
    long reimbursed = 0;
    for (Object o : (List<?>) fse.get("acts")) {
      GenericRecord act = (GenericRecord) o;
      long cents = (Long) act.get("charged_cents");
      charged += cents;
      reimbursed += (Boolean) act.get("ald_related") ? cents : cents * 70 / 100;
    }
    GenericRecord professional = (GenericRecord) fse.get("professional");
    String category = professional.get("category").toString();
    boolean feeApplies =
        switch (category) {
          case "GP", "SPECIALIST", "LABORATORY", "RADIOLOGY" -> true;
          default -> false;
        };
    long fee = 0;
    if (feeApplies && dayFeesBefore < DAY_FEES_CAP) {
      fee = Math.min(FLAT_FEE_CENTS, Math.max(0, YEAR_FEE_CAP_CENTS - yearFeesBefore));
      fee = Math.min(fee, reimbursed);
    }
    int dayFees = dayFeesBefore + (fee > 0 ? 1 : 0);
    return new Amounts(charged, reimbursed - fee, fee, dayFees, yearFeesBefore + fee);
  }

  /** A decision record (accepted or rejected). */
  static GenericRecord decision(
      GenericRecord fse, String beneficiary, List<String> reasons, String route, String fund,
      Amounts amounts) {
    GenericData.Record d = new GenericData.Record(Schemas.DECISION);
    d.put("fse_id", text(fse.get("fse_id")));
    d.put("beneficiary", beneficiary);
    d.put("rpps", text(((GenericRecord) fse.get("professional")).get("rpps")));
    d.put("care_date", fse.get("care_date"));
    d.put("accepted", reasons.isEmpty());
    d.put("reasons", new ArrayList<>(reasons));
    d.put("route", route);
    d.put("fund", fund);
    d.put("charged_cents", amounts == null ? 0L : amounts.charged());
    d.put("reimbursed_cents", amounts == null ? 0L : amounts.reimbursed());
    d.put("flat_fee_cents", amounts == null ? 0L : amounts.fee());
    d.put("day_fees", amounts == null ? 0 : amounts.dayFees());
    d.put("year_fee_cents", amounts == null ? 0L : amounts.yearFees());
    d.put("rule_version", RULE_VERSION);
    return d;
  }
}
