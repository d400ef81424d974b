package clearing.peer;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.time.LocalDate;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.avro.generic.GenericRecord;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.Stores;

/**
 * The peer's topology: the four steps of ours (validation, entitlement, routing,
 * reimbursement) as four processors of one sub-topology, handing each claim to the next in
 * memory, with RocksDB stores backed by changelog topics; the PKI a global store (every
 * partition needs every professional's certificate), the rights a store fed from ref.rights in
 * the same task as the claims (co-partitioned: both topics are keyed and partitioned by the
 * beneficiary's pseudonymous key, as ours are).
 */
final class Steps {
  static final String PKI = "pki";
  static final String RIGHTS = "rights";
  static final String SEEN = "seen";
  static final String COUNTERS = "counters";

  /** Rights records applied to the store, for the start-up's readiness check. */
  static final AtomicLong RIGHTS_LOADED = new AtomicLong();

  private Steps() {}

  /** The topics of a run: the claims and decisions under {@code prefix}, ours' reference data under {@code refs}. */
  record Topics(String submitted, String decided, String rejected, String dlq, String rights, String pki) {
    static Topics of(String prefix, String refs) {
      return new Topics(
          prefix + ".fse.submitted",
          prefix + ".fse.decided",
          prefix + ".fse.rejected",
          prefix + ".dlq",
          refs + ".ref.rights",
          refs + ".ref.pki");
    }
  }

  static Topology topology(Topics t) {
    ByteArrayDeserializer bytesIn = new ByteArrayDeserializer();
    Serializer<Object> bytesOut = (topic, value) -> (byte[]) value;
    ByteArraySerializer keysOut = new ByteArraySerializer();
    Topology topology = new Topology();
    topology.addGlobalStore(
        Stores.keyValueStoreBuilder(
                Stores.persistentKeyValueStore(PKI), Serdes.Bytes(), Serdes.ByteArray())
            .withLoggingDisabled(),
        "pki-source",
        bytesIn,
        bytesIn,
        t.pki(),
        "pki-loader",
        PkiLoader::new);
    topology.addSource("rights-source", bytesIn, bytesIn, t.rights());
    topology.addProcessor("rights-loader", RightsLoader::new, "rights-source");
    topology.addSource("claims", bytesIn, bytesIn, t.submitted());
    topology.addProcessor("validation", Validation::new, "claims");
    topology.addProcessor("entitlement", Entitlement::new, "validation");
    topology.addProcessor("routing", Routing::new, "entitlement");
    topology.addProcessor("reimbursement", Reimbursement::new, "routing");
    topology.addSink("decided", t.decided(), keysOut, bytesOut, "reimbursement");
    topology.addSink(
        "rejected", t.rejected(), keysOut, bytesOut, "validation", "entitlement", "routing",
        "reimbursement");
    topology.addSink("dlq", t.dlq(), keysOut, bytesOut, "validation");
    topology.addStateStore(store(RIGHTS), "rights-loader", "entitlement");
    topology.addStateStore(store(SEEN), "validation");
    topology.addStateStore(store(COUNTERS), "reimbursement");
    return topology;
  }

  /** A RocksDB store with its changelog (the default of a persistent store). */
  private static org.apache.kafka.streams.state.StoreBuilder<KeyValueStore<Bytes, byte[]>> store(
      String name) {
    return Stores.keyValueStoreBuilder(
        Stores.persistentKeyValueStore(name), Serdes.Bytes(), Serdes.ByteArray());
  }

  static Bytes key(String text) {
    return Bytes.wrap(text.getBytes(StandardCharsets.UTF_8));
  }

  /** A claim between the steps, in memory. */
  static final class Claim {
    final String beneficiary;
    final GenericRecord fse;
    String fund;
    String route;

    Claim(String beneficiary, GenericRecord fse) {
      this.beneficiary = beneficiary;
      this.fse = fse;
    }
  }

  /** What every step shares: the rules' codec, and how a rejection is written. */
  abstract static class Step implements Processor<byte[], Object, byte[], Object> {
    final Claims claims = new Claims();
    ProcessorContext<byte[], Object> context;

    @Override
    public void init(ProcessorContext<byte[], Object> context) {
      this.context = context;
    }

    void reject(Record<byte[], ?> record, Claim claim, String code) {
      byte[] decision =
          claims.encodeDecision(
              Claims.decision(claim.fse, claim.beneficiary, List.of(code), claim.route, claim.fund, null));
      context.forward(record.withValue((Object) decision), "rejected");
    }

    void pass(Record<byte[], ?> record, Claim claim, String next) {
      context.forward(record.withValue((Object) claim), next);
    }
  }

  /** ref.pki into the global store: certificates by id, each certificate's earliest revocation. */
  static final class PkiLoader implements Processor<byte[], byte[], Void, Void> {
    private final Claims claims = new Claims();
    private KeyValueStore<Bytes, byte[]> store;

    @Override
    public void init(ProcessorContext<Void, Void> context) {
      store = context.getStateStore(PKI);
    }

    @Override
    public void process(Record<byte[], byte[]> record) {
      GenericRecord event;
      try {
        event = claims.decodePki(record.value());
      } catch (Claims.BadRecord e) {
        return; // ours dead-letters a bad reference record; the peer has no reader for it
      }
      GenericRecord r = (GenericRecord) event.get("record");
      if (r.getSchema().getName().equals("Certificate")) {
        store.put(key("c|" + r.get("id")), record.value());
      } else {
        Bytes k = key("r|" + r.get("cert"));
        int on = (Integer) r.get("revoked_on");
        byte[] before = store.get(k);
        if (before == null || ByteBuffer.wrap(before).getInt() > on) {
          store.put(k, ByteBuffer.allocate(4).putInt(on).array());
        }
      }
    }
  }

  /** ref.rights into the co-partitioned rights store, as written (decoded when read, as ours). */
  static final class RightsLoader implements Processor<byte[], byte[], Void, Void> {
    private KeyValueStore<Bytes, byte[]> store;

    @Override
    public void init(ProcessorContext<Void, Void> context) {
      store = context.getStateStore(RIGHTS);
    }

    @Override
    public void process(Record<byte[], byte[]> record) {
      store.put(Bytes.wrap(record.key()), record.value());
      RIGHTS_LOADED.incrementAndGet();
    }
  }

  /** Decode, the FSE's fields and dates, the signature, then the duplicate check (ours' order). */
  static final class Validation extends Step {
    private final Certificates certificates = new Certificates();
    private KeyValueStore<Bytes, byte[]> pki;
    private KeyValueStore<Bytes, byte[]> seen;

    @Override
    public void init(ProcessorContext<byte[], Object> context) {
      super.init(context);
      pki = context.getStateStore(PKI);
      seen = context.getStateStore(SEEN);
    }

    @Override
    public void process(Record<byte[], Object> record) {
      byte[] value = (byte[]) record.value();
      GenericRecord fse;
      try {
        fse = claims.decodeSubmitted(value);
      } catch (Claims.BadRecord e) {
        context.forward(record.withValue((Object) value), "dlq");
        return;
      }
      Claim claim = new Claim(new String(record.key(), StandardCharsets.UTF_8), fse);
      int receipt = Claims.receiptDay(fse);
      String code = Claims.checkFields(fse, receipt);
      if (code == null) {
        code = signature(fse, receipt);
      }
      if (code != null) {
        reject(record, claim, code);
        return;
      }
      Bytes seenKey = key(claim.beneficiary + "|" + fse.get("fse_id"));
      if (seen.get(seenKey) != null) {
        reject(record, claim, "duplicate");
        return;
      }
      seen.put(seenKey, ByteBuffer.allocate(4).putInt(receipt).array());
      pass(record, claim, "entitlement");
    }

    private String signature(GenericRecord fse, int receipt) {
      GenericRecord sig = (GenericRecord) fse.get("signature");
      if (sig == null) {
        return "missing_signature";
      }
      String certId = Claims.text(sig.get("cert"));
      byte[] stored = pki.get(key("c|" + certId));
      Certificates.Cert cert = null;
      if (stored != null) {
        cert = certificates.cached(certId, stored, this::parse);
      }
      byte[] revoked = pki.get(key("r|" + certId));
      ByteBuffer value = (ByteBuffer) sig.get("value");
      byte[] signature = new byte[value.remaining()];
      value.duplicate().get(signature);
      String rpps = Claims.text(((GenericRecord) fse.get("professional")).get("rpps"));
      return Certificates.verify(
          cert,
          revoked == null ? null : ByteBuffer.wrap(revoked).getInt(),
          rpps,
          Claims.text(sig.get("alg")),
          (Integer) fse.get("care_date"),
          receipt,
          claims.canonicalBytes(fse),
          signature);
    }

    private Certificates.Cert parse(byte[] stored) {
      try {
        GenericRecord c = (GenericRecord) claims.decodePki(stored).get("record");
        ByteBuffer spki = (ByteBuffer) c.get("public_key");
        byte[] der = new byte[spki.remaining()];
        spki.duplicate().get(der);
        return Certificates.parse(
            Claims.text(c.get("id")),
            Claims.text(c.get("rpps")),
            Claims.text(c.get("alg")),
            der,
            (Integer) c.get("not_before"),
            (Integer) c.get("not_after"));
      } catch (Claims.BadRecord | GeneralSecurityException e) {
        return null; // an unusable certificate verifies nothing: bad_signature
      }
    }
  }

  /** The beneficiary's rights on the date of care (a visitor's card is judged by routing). */
  static final class Entitlement extends Step {
    private KeyValueStore<Bytes, byte[]> rights;

    @Override
    public void init(ProcessorContext<byte[], Object> context) {
      super.init(context);
      rights = context.getStateStore(RIGHTS);
    }

    @Override
    public void process(Record<byte[], Object> record) {
      Claim claim = (Claim) record.value();
      if (claim.fse.get("ehic") == null) {
        byte[] stored = rights.get(Bytes.wrap(record.key()));
        GenericRecord r = null;
        if (stored != null) {
          try {
            r = claims.decodeRights(stored);
          } catch (Claims.BadRecord e) {
            r = null;
          }
        }
        Claims.Entitlement e = Claims.entitle(claim.fse, r);
        claim.fund = e.fund();
        if (e.code() != null) {
          reject(record, claim, e.code());
          return;
        }
      }
      pass(record, claim, "routing");
    }
  }

  /** Domestic, or the visitor's EU institution. */
  static final class Routing extends Step {
    @Override
    public void process(Record<byte[], Object> record) {
      Claim claim = (Claim) record.value();
      Claims.Route r = Claims.route(claim.fse);
      claim.route = r.route();
      if (r.code() != null) {
        reject(record, claim, r.code());
        return;
      }
      pass(record, claim, "reimbursement");
    }
  }

  /** The amounts, and the beneficiary's daily and yearly counters read and written. */
  static final class Reimbursement extends Step {
    private KeyValueStore<Bytes, byte[]> counters;

    @Override
    public void init(ProcessorContext<byte[], Object> context) {
      super.init(context);
      counters = context.getStateStore(COUNTERS);
    }

    @Override
    public void process(Record<byte[], Object> record) {
      Claim claim = (Claim) record.value();
      int care = (Integer) claim.fse.get("care_date");
      Bytes day = key("d|" + claim.beneficiary + "|" + care);
      Bytes year = key("y|" + claim.beneficiary + "|" + LocalDate.ofEpochDay(care).getYear());
      byte[] d = counters.get(day);
      byte[] y = counters.get(year);
      Claims.Amounts a =
          Claims.reimburse(
              claim.fse, d == null ? 0 : ByteBuffer.wrap(d).getInt(), y == null ? 0 : ByteBuffer.wrap(y).getLong());
      counters.put(day, ByteBuffer.allocate(4).putInt(a.dayFees()).array());
      counters.put(year, ByteBuffer.allocate(8).putLong(a.yearFees()).array());
      byte[] decision =
          claims.encodeDecision(
              Claims.decision(claim.fse, claim.beneficiary, List.of(), claim.route, claim.fund, a));
      context.forward(record.withValue((Object) decision), "decided");
    }
  }
}
