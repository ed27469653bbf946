package shoplake.producer;

import java.io.BufferedReader;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.Base64;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * Sends a prepared plan of simulated records to Kafka at a fixed rate, stamping each event with the real time it
 * is sent: the benchmarks' load generator, written in Java so that pacing thousands of records a second costs the
 * two shared cores a few percent instead of most of one (the plan is written by {@code benchmarks/paced_producer.py}).
 *
 * <p>A plan line is {@code topic TAB base64(key) TAB stamp_line TAB lateness_ms TAB base64(value)}. The value holds
 * {@link #PLACEHOLDER} where its event time goes; the producer writes there the time the record {@code stamp_line}
 * (0-based) was sent, minus {@code lateness_ms}. A line stamped by an earlier line repeats that line's stamp, so a
 * redelivered event repeats its original's bytes exactly. Records are sent in order, record {@code i} no earlier than
 * {@code i / rate} seconds after the first; a producer that falls behind sends as fast as it can until it is back on
 * pace. Exit status 0 when every record was acknowledged by the broker, 1 when any failed, 2 on bad arguments.
 */
public final class PacedProducer {
  /** The text a plan's values carry in place of their event time. */
  public static final String PLACEHOLDER = "@@SHOPLAKE_TIMESTAMP@@";

  private static final byte[] PLACEHOLDER_BYTES = PLACEHOLDER.getBytes(StandardCharsets.US_ASCII);
  private static final DateTimeFormatter CONTRACT_TIME =
      DateTimeFormatter.ofPattern("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'").withZone(ZoneOffset.UTC);

  private record Line(String topic, byte[] key, int stampLine, long latenessMs, byte[] value) {}

  private PacedProducer() {}

  public static void main(String[] args) throws Exception {
    if (args.length != 3) {
      System.err.println("usage: PacedProducer <bootstrap servers> <records per second> <plan file>");
      System.exit(2);
    }
    double rate;
    try {
      rate = Double.parseDouble(args[1]);
    } catch (NumberFormatException e) {
      rate = Double.NaN;
    }
    if (!(rate > 0) || Double.isInfinite(rate)) {
      System.err.println("the rate must be a positive number of records per second, got " + args[1]);
      System.exit(2);
    }
    Path plan = Path.of(args[2]);
    System.exit(send(args[0], rate, plan, scan(plan)) ? 0 : 1);
  }

  /** A plan line; {@code number} counts from 0 in the file. */
  static Line parse(Path path, long number, String text) throws IOException {
    String[] fields = text.split("\t", -1);
    if (fields.length != 5) {
      throw new IOException(path + ":" + (number + 1) + ": expected 5 tab-separated fields");
    }
    int stampLine = Integer.parseInt(fields[2]);
    if (stampLine < 0 || stampLine > number) {
      throw new IOException(path + ":" + (number + 1) + ": stamp line " + stampLine + " is not sent by then");
    }
    Base64.Decoder base64 = Base64.getDecoder();
    return new Line(
        fields[0], base64.decode(fields[1]), stampLine, Long.parseLong(fields[3]), base64.decode(fields[4]));
  }

  /** What the paced pass needs to know ahead: the plan's topics, and the lines whose stamp a later line repeats. */
  record Scan(Set<String> topics, Set<Integer> repeatedStamps) {}

  /**
   * The first pass over the plan, before the clock starts; the paced pass then reads the plan as it goes and keeps
   * in memory only the stamped values a later line repeats.
   */
  static Scan scan(Path path) throws IOException {
    Set<String> topics = new HashSet<>();
    Set<Integer> repeated = new HashSet<>();
    try (BufferedReader reader = Files.newBufferedReader(path, StandardCharsets.US_ASCII)) {
      String text;
      for (long number = 0; (text = reader.readLine()) != null; number++) {
        String[] fields = text.split("\t", 4);
        if (fields.length != 4) {
          throw new IOException(path + ":" + (number + 1) + ": expected 5 tab-separated fields");
        }
        topics.add(fields[0]);
        int stampLine = Integer.parseInt(fields[2]);
        if (stampLine != number) {
          repeated.add(stampLine);
        }
      }
    }
    return new Scan(topics, repeated);
  }

  /**
   * The transport and login of {@code env}'s {@code SHOPLAKE_KAFKA__*} variables, the ones the Python clients'
   * settings read: nothing for PLAINTEXT; for SASL_SSL, a SCRAM login (its password only ever in the JAAS
   * configuration, which Kafka's client logs as hidden) and, if given, the PEM file of the brokers' authority.
   */
  static Properties security(Map<String, String> env) {
    Properties props = new Properties();
    String protocol = env.getOrDefault("SHOPLAKE_KAFKA__SECURITY_PROTOCOL", "PLAINTEXT");
    if (protocol.equals("PLAINTEXT")) {
      return props;
    }
    if (!protocol.equals("SASL_SSL")) {
      throw new IllegalArgumentException(
          "SHOPLAKE_KAFKA__SECURITY_PROTOCOL must be PLAINTEXT or SASL_SSL, got " + protocol);
    }
    String user = env.getOrDefault("SHOPLAKE_KAFKA__SASL_USERNAME", "");
    String password = env.getOrDefault("SHOPLAKE_KAFKA__SASL_PASSWORD", "");
    if (user.isEmpty() || password.isEmpty()) {
      throw new IllegalArgumentException(
          "SASL_SSL needs SHOPLAKE_KAFKA__SASL_USERNAME and SHOPLAKE_KAFKA__SASL_PASSWORD");
    }
    props.put("security.protocol", protocol);
    props.put("sasl.mechanism", env.getOrDefault("SHOPLAKE_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512"));
    props.put(
        "sasl.jaas.config",
        "org.apache.kafka.common.security.scram.ScramLoginModule required username="
            + jaasQuoted(user)
            + " password="
            + jaasQuoted(password)
            + ";");
    String authority = env.getOrDefault("SHOPLAKE_KAFKA__SSL_CA_FILE", "");
    if (!authority.isEmpty()) {
      props.put("ssl.truststore.type", "PEM");
      props.put("ssl.truststore.location", authority);
    }
    return props;
  }

  private static String jaasQuoted(String value) {
    return "\"" + value.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
  }

  static boolean send(String bootstrapServers, double rate, Path path, Scan scan)
      throws IOException, InterruptedException {
    Properties config = new Properties();
    config.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrapServers);
    config.put(ProducerConfig.CLIENT_ID_CONFIG, "shoplake-paced-producer");
    config.put(ProducerConfig.ACKS_CONFIG, "all");
    config.put(ProducerConfig.LINGER_MS_CONFIG, 10);
    config.put(ProducerConfig.BATCH_SIZE_CONFIG, 1024 * 1024);
    config.put(ProducerConfig.MAX_REQUEST_SIZE_CONFIG, 4 * 1024 * 1024);
    config.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    config.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    config.putAll(security(System.getenv()));

    Map<Integer, byte[]> stampedOnce = new HashMap<>();
    AtomicReference<Exception> firstFailure = new AtomicReference<>();
    AtomicLong failures = new AtomicLong();
    try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(config);
        BufferedReader reader = Files.newBufferedReader(path, StandardCharsets.US_ASCII)) {
      // The first send to a topic waits for its metadata: fetched before the clock starts, it cannot stall the pace.
      for (String topic : scan.topics()) {
        producer.partitionsFor(topic);
      }
      long startNanos = System.nanoTime();
      int sent = 0;
      String text;
      while (failures.get() == 0 && (text = reader.readLine()) != null) {
        Line line = parse(path, sent, text);
        long aheadNanos = startNanos + (long) (sent * 1e9 / rate) - System.nanoTime();
        if (aheadNanos > 2_000_000L) {
          TimeUnit.NANOSECONDS.sleep(aheadNanos);
        }
        byte[] value;
        if (line.stampLine() == sent) {
          value = stamp(line.value(), System.currentTimeMillis() - line.latenessMs());
          if (scan.repeatedStamps().contains(sent)) {
            stampedOnce.put(sent, value);
          }
        } else {
          value = stampedOnce.get(line.stampLine());
        }
        producer.send(
            new ProducerRecord<>(line.topic(), line.key(), value),
            (metadata, exception) -> {
              if (exception != null) {
                failures.incrementAndGet();
                firstFailure.compareAndSet(null, exception);
              }
            });
        sent++;
      }
      producer.flush();
      double seconds = (System.nanoTime() - startNanos) / 1e9;
      if (failures.get() > 0) {
        System.err.println(failures.get() + " record(s) were not delivered; first error: " + firstFailure.get());
        return false;
      }
      System.out.printf("sent %d records in %.2f s (%.0f/s)%n", sent, seconds, sent / seconds);
      return true;
    }
  }

  /** The value with its placeholder replaced by the contract's text of {@code epochMillis}; as is without one. */
  static byte[] stamp(byte[] value, long epochMillis) {
    int at = indexOf(value, PLACEHOLDER_BYTES);
    if (at < 0) {
      return value;
    }
    byte[] time = CONTRACT_TIME.format(Instant.ofEpochMilli(epochMillis)).getBytes(StandardCharsets.US_ASCII);
    byte[] stamped = new byte[value.length - PLACEHOLDER_BYTES.length + time.length];
    System.arraycopy(value, 0, stamped, 0, at);
    System.arraycopy(time, 0, stamped, at, time.length);
    int rest = at + PLACEHOLDER_BYTES.length;
    System.arraycopy(value, rest, stamped, at + time.length, value.length - rest);
    return stamped;
  }

  private static int indexOf(byte[] haystack, byte[] needle) {
    outer:
    for (int i = 0; i + needle.length <= haystack.length; i++) {
      for (int j = 0; j < needle.length; j++) {
        if (haystack[i + j] != needle[j]) {
          continue outer;
        }
      }
      return i;
    }
    return -1;
  }
}
