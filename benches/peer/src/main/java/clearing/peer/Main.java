package clearing.peer;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;

/**
 * The Kafka Streams peer (docs/performance.md, "Against Kafka Streams").
 *
 * <pre>
 * java -jar clearing-peer.jar topics --bootstrap B --prefix P [--partitions 4]
 * java -jar clearing-peer.jar run --bootstrap B --prefix P --refs R [--guarantee exactly_once_v2|at_least_once]
 *      [--threads 2] [--state-dir D] [--ready FILE]
 * java -jar clearing-peer.jar drive --bootstrap B --from TOPIC --prefix P --claims N [--rate R] --out FILE
 * </pre>
 *
 * {@code run} decides the claims of P.fse.submitted with ours' reference data of R (R.ref.pki,
 * R.ref.rights) onto P.fse.decided / P.fse.rejected until stopped (SIGTERM); {@code drive}
 * feeds ours' recorded claims into P.fse.submitted at a rate and times each decision.
 */
public final class Main {
  private Main() {}

  public static void main(String[] argv) throws Exception {
    if (argv.length == 0) {
      usage();
    }
    Map<String, String> a = options(argv);
    switch (argv[0]) {
      case "topics" -> topics(a);
      case "run" -> run(a);
      case "drive" -> System.exit(Driver.drive(a));
      default -> usage();
    }
  }

  private static void usage() {
    System.err.println("usage: clearing-peer topics|run|drive --bootstrap HOST:PORT ... (see Main.java)");
    System.exit(2);
  }

  static Map<String, String> options(String[] argv) {
    Map<String, String> a = new HashMap<>();
    for (int i = 1; i + 1 < argv.length; i += 2) {
      if (!argv[i].startsWith("--")) {
        throw new IllegalArgumentException("expected an option, got " + argv[i]);
      }
      a.put(argv[i].substring(2), argv[i + 1]);
    }
    return a;
  }

  static String need(Map<String, String> a, String name) {
    String v = a.get(name);
    if (v == null) {
      throw new IllegalArgumentException("--" + name + " is required");
    }
    return v;
  }

  /** The run's own topics, made empty before the peer starts (the driver writes, the peer reads). */
  private static void topics(Map<String, String> a) throws Exception {
    Steps.Topics t = Steps.Topics.of(need(a, "prefix"), need(a, "prefix"));
    int partitions = Integer.parseInt(a.getOrDefault("partitions", "4"));
    try (Admin admin = admin(need(a, "bootstrap"))) {
      List<NewTopic> topics = new ArrayList<>();
      for (String name : List.of(t.submitted(), t.decided(), t.rejected(), t.dlq())) {
        topics.add(new NewTopic(name, partitions, (short) 1).configs(EVENT_TIME_TOPIC));
      }
      admin.createTopics(topics).all().get(60, TimeUnit.SECONDS);
    }
  }

  /**
   * As ours makes its topics (pipeline/src/bus/kafka/mod.rs): a record's timestamp is its event
   * time (an FSE's receipt, months old or dated ahead), so no time-based retention and any
   * timestamp accepted; Apache Kafka 4's defaults would delete or refuse such records.
   */
  static final Map<String, String> EVENT_TIME_TOPIC =
      Map.of(
          "retention.ms", "-1",
          "message.timestamp.before.max.ms", String.valueOf(Long.MAX_VALUE),
          "message.timestamp.after.max.ms", String.valueOf(Long.MAX_VALUE));

  static Admin admin(String bootstrap) {
    Properties p = new Properties();
    p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    return Admin.create(p);
  }

  private static void run(Map<String, String> a) throws Exception {
    String bootstrap = need(a, "bootstrap");
    String prefix = need(a, "prefix");
    Steps.Topics t = Steps.Topics.of(prefix, need(a, "refs"));
    String guarantee = a.getOrDefault("guarantee", StreamsConfig.EXACTLY_ONCE_V2);
    Properties p = new Properties();
    p.put(StreamsConfig.APPLICATION_ID_CONFIG, "peer-" + prefix);
    p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
    p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, a.getOrDefault("threads", "2"));
    p.put(StreamsConfig.STATE_DIR_CONFIG, a.getOrDefault("state-dir", Files.createTempDirectory("peer").toString()));
    p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
    if (a.containsKey("commit-ms")) {
      p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, a.get("commit-ms"));
    }
    p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
    // The changelogs carry the claims' event times too.
    EVENT_TIME_TOPIC.forEach((k, v) -> p.put(StreamsConfig.topicPrefix(k), v));
    // Streams' own default (100 ms) would add a tenth of a second to every at-least-once
    // decision; ours flushes within a few ms. Under exactly-once the commit flushes anyway.
    p.put(StreamsConfig.producerPrefix(ProducerConfig.LINGER_MS_CONFIG), a.getOrDefault("linger-ms", "5"));
    KafkaStreams streams = new KafkaStreams(Steps.topology(t), p);
    CountDownLatch stopped = new CountDownLatch(1);
    streams.setUncaughtExceptionHandler(
        e -> {
          e.printStackTrace();
          stopped.countDown();
          return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler
              .StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
    Runtime.getRuntime()
        .addShutdownHook(
            new Thread(
                () -> {
                  streams.close(java.time.Duration.ofSeconds(30));
                  stopped.countDown();
                }));
    streams.start();
    long rights = endOffsets(bootstrap, t.rights());
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(180);
    // Ready once every rights record is in the store (or, should the topic hold transaction
    // markers, once the count has stood still for two seconds).
    long last = -1;
    long stillSince = System.nanoTime();
    while (true) {
      long loaded = Steps.RIGHTS_LOADED.get();
      if (loaded != last) {
        last = loaded;
        stillSince = System.nanoTime();
      }
      boolean running = streams.state() == KafkaStreams.State.RUNNING;
      if (running && (loaded >= rights
          || (loaded > 0 && System.nanoTime() - stillSince > TimeUnit.SECONDS.toNanos(2)))) {
        break;
      }
      if (System.nanoTime() > deadline || stopped.getCount() == 0) {
        System.err.println("peer: not ready in time (state " + streams.state() + ", rights "
            + Steps.RIGHTS_LOADED.get() + "/" + rights + ")");
        System.exit(1);
      }
      Thread.sleep(20);
    }
    System.err.println("peer: running (" + guarantee + "), " + Steps.RIGHTS_LOADED.get() + " rights records loaded of " + rights);
    if (a.containsKey("ready")) {
      Files.writeString(Path.of(a.get("ready")), ProcessHandle.current().pid() + "\n");
    }
    stopped.await();
  }

  /** Records on every partition of {@code topic}. */
  static long endOffsets(String bootstrap, String topic) throws Exception {
    try (Admin admin = admin(bootstrap)) {
      TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
      Map<TopicPartition, OffsetSpec> specs = new HashMap<>();
      d.partitions().forEach(pi -> specs.put(new TopicPartition(topic, pi.partition()), OffsetSpec.latest()));
      long total = 0;
      for (var e : admin.listOffsets(specs).all().get().values()) {
        total += e.offset();
      }
      return total;
    }
  }
}
