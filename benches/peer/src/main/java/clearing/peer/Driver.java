package clearing.peer;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * The peer's feeder and reader, in a process of their own (so that the peer's CPU is its own):
 * ours' recorded claims (the loadtest's fse.submitted) into the peer's input topic, each to the
 * partition ours gave it, at a fixed rate or flat out; every decision read back and timed as
 * ours' load test times it (src/cmd/loadtest/follow.rs): from the claim's due time by the
 * schedule (flat out: when it was sent) to reading its decision; steady-state latency leaves out
 * the claims due in the warm-up (a tenth of the planned run, 1 to 10 s), steady throughput is
 * the outcomes between 10 % and 90 % of them over their time.
 */
final class Driver {
  private Driver() {}

  record Claim(int partition, long timestamp, byte[] key, byte[] value, String fseId) {}

  static int drive(Map<String, String> a) throws Exception {
    String bootstrap = Main.need(a, "bootstrap");
    Steps.Topics t = Steps.Topics.of(Main.need(a, "prefix"), Main.need(a, "prefix"));
    double rate = Double.parseDouble(a.getOrDefault("rate", "0"));
    long timeoutS = Long.parseLong(a.getOrDefault("drain-timeout", "300"));
    List<Claim> all = recorded(bootstrap, Main.need(a, "from"));
    int n = Math.min(all.size(), Integer.parseInt(a.getOrDefault("claims", String.valueOf(all.size()))));
    List<Claim> claims = all.subList(0, n);
    double warmUpS = Math.min(10, Math.max(1, (rate > 0 ? n / rate : 0) / 10));

    Map<String, ArrayDeque<Long>> due = new ConcurrentHashMap<>();
    Reader reader = new Reader(bootstrap, t, due, n);
    Thread readerThread = new Thread(reader, "peer-reader");
    readerThread.start();

    Properties p = new Properties();
    p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    p.put(ProducerConfig.ACKS_CONFIG, "all");
    p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
    AtomicLong failed = new AtomicLong();
    long start;
    long fedAt;
    try (KafkaProducer<byte[], byte[]> producer =
        new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer())) {
      start = System.nanoTime();
      reader.steadyFrom = start + (long) (warmUpS * 1e9);
      for (int i = 0; i < n; i++) {
        Claim c = claims.get(i);
        long at;
        if (rate > 0) {
          at = start + (long) (i * 1e9 / rate);
          long wait;
          while ((wait = at - System.nanoTime()) > 0) {
            LockSupport.parkNanos(Math.min(wait, 1_000_000));
          }
        } else {
          at = System.nanoTime();
        }
        due.computeIfAbsent(c.fseId(), k -> new ArrayDeque<>()).add(at);
        producer.send(
            new ProducerRecord<>(t.submitted(), c.partition(), c.timestamp(), c.key(), c.value()),
            (meta, e) -> {
              if (e != null && failed.getAndIncrement() == 0) {
                System.err.println("drive: a claim was not written: " + e);
              }
            });
      }
      producer.flush();
      fedAt = System.nanoTime();
    }
    if (failed.get() > 0) {
      System.err.println("drive: " + failed.get() + " claims were not written");
    }
    readerThread.join(TimeUnit.SECONDS.toMillis(timeoutS));
    reader.stop = true;
    readerThread.join();
    String json = reader.report(n, rate, (fedAt - start) / 1e9, start, warmUpS);
    Files.writeString(Path.of(Main.need(a, "out")), json);
    System.out.println(json);
    return reader.outcomes() >= n ? 0 : 1;
  }

  /**
   * Every record of {@code topic}, partitions interleaved in proportion (each partition's order
   * kept: the order a beneficiary's claims were fed in).
   */
  static List<Claim> recorded(String bootstrap, String topic) {
    Properties p = new Properties();
    p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
    p.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "5000");
    List<double[]> order = new ArrayList<>();
    List<Claim> claims = new ArrayList<>();
    try (KafkaConsumer<byte[], byte[]> consumer =
        new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
      List<TopicPartition> parts = new ArrayList<>();
      for (PartitionInfo pi : consumer.partitionsFor(topic)) {
        parts.add(new TopicPartition(topic, pi.partition()));
      }
      consumer.assign(parts);
      consumer.seekToBeginning(parts);
      Map<TopicPartition, Long> end = consumer.endOffsets(parts);
      while (parts.stream().anyMatch(tp -> consumer.position(tp) < end.get(tp))) {
        for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(200))) {
          double share = (r.offset() + 0.5) / end.get(new TopicPartition(topic, r.partition()));
          order.add(new double[] {share, claims.size()});
          claims.add(new Claim(r.partition(), r.timestamp(), r.key(), r.value(), firstString(r.value())));
        }
      }
    }
    order.sort(Comparator.comparingDouble(o -> o[0]));
    List<Claim> ordered = new ArrayList<>(claims.size());
    for (double[] o : order) {
      ordered.add(claims.get((int) o[1]));
    }
    return ordered;
  }

  /** The first field of a single-object record whose first field is a string (fse_id). */
  static String firstString(byte[] value) {
    int i = 10;
    long raw = 0;
    int shift = 0;
    while (i < value.length) {
      byte b = value[i++];
      raw |= (long) (b & 0x7f) << shift;
      shift += 7;
      if ((b & 0x80) == 0) {
        break;
      }
    }
    int len = (int) ((raw >>> 1) ^ -(raw & 1));
    if (len < 0 || i + len > value.length) {
      return "";
    }
    return new String(value, i, len, StandardCharsets.UTF_8);
  }

  /** Reads the decisions and times them. */
  static final class Reader implements Runnable {
    private final String bootstrap;
    private final Steps.Topics topics;
    private final Map<String, ArrayDeque<Long>> due;
    private final int expected;
    volatile boolean stop;
    volatile long steadyFrom = Long.MAX_VALUE;
    private final AtomicLong accepted = new AtomicLong();
    private final AtomicLong rejected = new AtomicLong();
    private final AtomicLong deadLetters = new AtomicLong();
    private long unmatched;
    private final Map<String, Long> reasons = new TreeMap<>();
    private final List<Long> latencyNs = new ArrayList<>();
    private final List<Long> steadyNs = new ArrayList<>();
    private final List<Long> readAt = new ArrayList<>();
    private final BinaryMessageDecoder<GenericRecord> decisions =
        new BinaryMessageDecoder<>(GenericData.get(), Schemas.DECISION);

    Reader(String bootstrap, Steps.Topics topics, Map<String, ArrayDeque<Long>> due, int expected) {
      this.bootstrap = bootstrap;
      this.topics = topics;
      this.due = due;
      this.expected = expected;
    }

    long outcomes() {
      return accepted.get() + rejected.get() + deadLetters.get();
    }

    @Override
    public void run() {
      Properties p = new Properties();
      p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
      // The decisions of a transaction are read once it commits, as ours' reader reads them.
      p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
      p.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, "5");
      try (KafkaConsumer<byte[], byte[]> consumer =
          new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
        List<TopicPartition> parts = new ArrayList<>();
        for (String topic : List.of(topics.decided(), topics.rejected(), topics.dlq())) {
          for (PartitionInfo pi : consumer.partitionsFor(topic)) {
            parts.add(new TopicPartition(topic, pi.partition()));
          }
        }
        consumer.assign(parts);
        consumer.seekToBeginning(parts);
        while (!stop && outcomes() < expected) {
          var records = consumer.poll(Duration.ofMillis(2));
          long now = System.nanoTime();
          for (ConsumerRecord<byte[], byte[]> r : records) {
            count(r, now);
          }
        }
      }
    }

    private void count(ConsumerRecord<byte[], byte[]> r, long now) {
      readAt.add(now);
      if (r.topic().equals(topics.dlq())) {
        deadLetters.incrementAndGet();
        reasons.merge("dead_letter", 1L, Long::sum);
        return;
      }
      (r.topic().equals(topics.decided()) ? accepted : rejected).incrementAndGet();
      String id = firstString(r.value());
      if (r.topic().equals(topics.rejected())) {
        try {
          for (Object code : (List<?>) decisions.decode(r.value()).get("reasons")) {
            reasons.merge(code.toString(), 1L, Long::sum);
          }
        } catch (IOException e) {
          reasons.merge("undecodable", 1L, Long::sum);
        }
      }
      ArrayDeque<Long> queue = due.get(id);
      Long at = queue == null ? null : queue.poll();
      if (at == null) {
        unmatched++;
        return;
      }
      long ns = Math.max(1000, now - at);
      latencyNs.add(ns);
      if (at >= steadyFrom) {
        steadyNs.add(ns);
      }
    }

    String report(int claims, double rate, double feedS, long start, double warmUpS) {
      long outcomes = outcomes();
      double wallS = readAt.isEmpty() ? 0 : (readAt.get(readAt.size() - 1) - start) / 1e9;
      double steady = outcomes / Math.max(wallS, 1e-9);
      int lo = (int) Math.ceil(0.1 * outcomes);
      int hi = (int) Math.ceil(0.9 * outcomes);
      if (hi > lo && hi - 1 < readAt.size() && readAt.get(hi - 1) > readAt.get(lo - 1 < 0 ? 0 : lo - 1)) {
        steady = (hi - lo) / ((readAt.get(hi - 1) - readAt.get(Math.max(0, lo - 1))) / 1e9);
      }
      StringBuilder reasonsJson = new StringBuilder("{");
      reasons.forEach((k, v) -> reasonsJson.append(reasonsJson.length() > 1 ? ", " : "").append('"').append(k).append("\": ").append(v));
      reasonsJson.append('}');
      return String.format(
          java.util.Locale.ROOT,
          "{\"claims\": %d, \"rate\": %.1f, \"complete\": %s, \"outcomes\": %d, \"accepted\": %d, "
              + "\"rejected\": %d, \"dead_letters\": %d, \"unmatched\": %d, \"rejections_by_code\": %s, "
              + "\"feed_s\": %.3f, \"wall_s\": %.3f, \"overall_per_s\": %.1f, \"steady_per_s\": %.1f, "
              + "\"warm_up_s\": %.1f, \"latency\": %s, \"latency_all\": %s}\n",
          claims, rate, outcomes >= claims, outcomes, accepted.get(), rejected.get(), deadLetters.get(),
          unmatched, reasonsJson, feedS, wallS, outcomes / Math.max(wallS, 1e-9), steady, warmUpS,
          // A run too short to have claims after its warm-up is timed over all its claims.
          percentiles(steadyNs.isEmpty() ? latencyNs : steadyNs), percentiles(latencyNs));
    }

    static String percentiles(List<Long> ns) {
      long[] v = ns.stream().mapToLong(Long::longValue).toArray();
      Arrays.sort(v);
      return String.format(
          java.util.Locale.ROOT,
          "{\"count\": %d, \"p50_ms\": %.3f, \"p90_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f}",
          v.length, at(v, 0.5), at(v, 0.9), at(v, 0.99), v.length == 0 ? 0 : v[v.length - 1] / 1e6);
    }

    private static double at(long[] sorted, double q) {
      if (sorted.length == 0) {
        return 0;
      }
      int i = (int) Math.ceil(q * sorted.length) - 1;
      return sorted[Math.max(0, Math.min(sorted.length - 1, i))] / 1e6;
    }
  }
}
