package clearing.peer;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import org.apache.avro.Schema;

/** The repository's Avro schemas (schemas/*.avsc, packed into the jar by the POM) and the peer's own. */
final class Schemas {
  /** fse.submitted as the loadtest writes it (the current version). */
  static final Schema SUBMITTED = load("schemas/fse.submitted.avsc");
  /** fse.submitted before prescriptions (records written before 2026-12-06 and the fixture). */
  static final Schema SUBMITTED_V2 = load("schemas/history/fse.submitted.v2.avsc");
  /** fse.submitted before foreign ePrescriptions: every record without one (2026-12-06). */
  static final Schema SUBMITTED_V3 = load("schemas/history/fse.submitted.v3.avsc");
  /** fse.submitted before billing identifiers: every record without one (2026-12-06). */
  static final Schema SUBMITTED_V4 = load("schemas/history/fse.submitted.v4.avsc");
  /** fse.submitted before renewable prescriptions: every record without renewals (2026-12-07). */
  static final Schema SUBMITTED_V5 = load("schemas/history/fse.submitted.v5.avsc");
  /** The signed form: fse.submitted.v1, encoded with signature null (docs/signatures.md). */
  static final Schema SIGNED_FORM = load("schemas/history/fse.submitted.v1.avsc");
  static final Schema PKI = load("schemas/ref.pki.avsc");
  static final Schema RIGHTS = load("schemas/ref.rights.avsc");
  static final Schema DECISION = load("peer/peer.decision.avsc");

  private Schemas() {}

  private static Schema load(String resource) {
    try (InputStream in = Schemas.class.getClassLoader().getResourceAsStream(resource)) {
      if (in == null) {
        throw new IllegalStateException(resource + " is not in the jar");
      }
      // One parser per file: the files share type names.
      return new Schema.Parser().parse(in);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}
