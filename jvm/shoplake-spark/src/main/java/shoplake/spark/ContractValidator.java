package shoplake.spark;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.ObjectReader;
import com.fasterxml.jackson.databind.json.JsonMapper;
import java.io.IOException;
import java.math.BigDecimal;
import java.math.RoundingMode;
import java.time.Instant;
import java.time.LocalDate;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Pattern;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.api.java.UDF2;
import org.apache.spark.unsafe.types.UTF8String;

/**
 * Checks a Kafka record against the event contract of its topic: the stream's validation, as one Spark function.
 *
 * <p>Called with the record's topic and value, it returns the failed rule ids (empty when the record is valid),
 * the envelope as sent (event id, event time and day, the raw event type and schema version) and the record's
 * typed fields, one struct per event type with only the topic's own filled. The row's layout is the return type
 * ``pipeline/streaming/silver.py`` declares from the same contract; the rule ids are listed there.
 *
 * <p>Why a function and not Spark expressions: the contract's rules as expressions were hundreds of them, which
 * Spark planned again for every micro-batch and generated code for per task, about a second of fixed cost per
 * micro-batch on two cores. One function is planned in milliseconds, parses each payload once (Jackson) and
 * checks it in a single pass.
 *
 * <p>Validation never throws on a record: whatever the bytes, the record gets a verdict.
 */
public final class ContractValidator implements UDF2<String, byte[], Row> {
  private static final long serialVersionUID = 1L;
  private static final Map<String, Contract> COMPILED = new ConcurrentHashMap<>();
  private static final ObjectMapper CONFIG = new ObjectMapper();
  private static final ObjectReader PAYLOAD = JsonMapper.builder(
          // Nesting deeper than any event: a payload built to exhaust the parser is just invalid JSON.
          JsonFactory.builder()
              .streamReadConstraints(StreamReadConstraints.builder().maxNestingDepth(64).build())
              .build())
      .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS) // one JSON object, nothing after it
      .disable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS)
      .build()
      .reader();

  private final String config;
  private transient Contract contract;

  /** ``config``: the contract and settings as JSON (topics, event types, fields, supported versions, size limit). */
  public ContractValidator(String config) {
    this.config = config;
    this.contract = compile(config);
  }

  private static Contract compile(String config) {
    return COMPILED.computeIfAbsent(config, json -> {
      try {
        return new Contract(CONFIG.readTree(json));
      } catch (IOException error) {
        throw new IllegalArgumentException("not a validator configuration: " + error.getMessage(), error);
      }
    });
  }

  @Override
  public Row call(String topic, byte[] value) {
    if (contract == null) {
      contract = compile(config); // deserialized in a task
    }
    return contract.validate(topic, value);
  }

  /** The compiled contract: per event type, its fields' rules, and what the stream accepts. */
  static final class Contract {
    private final Map<String, String> topics = new HashMap<>();
    private final List<String> eventTypes = new ArrayList<>();
    private final Map<String, List<FieldRule>> fields = new LinkedHashMap<>();
    private final Set<Integer> supportedVersions = new java.util.HashSet<>();
    private final int maxPayloadBytes;
    private final FieldRule timestamp;

    Contract(JsonNode config) {
      config.get("topics").properties().forEach(entry -> topics.put(entry.getKey(), entry.getValue().asText()));
      config.get("event_types").forEach(type -> eventTypes.add(type.asText()));
      config.get("supported_versions").forEach(version -> supportedVersions.add(version.asInt()));
      maxPayloadBytes = config.get("max_payload_bytes").asInt();
      Pattern timestampFormat = Pattern.compile(config.get("timestamp_regex").asText());
      FieldRule eventTime = null;
      for (String type : eventTypes) {
        List<FieldRule> rules = new ArrayList<>();
        for (JsonNode spec : config.get("contracts").get(type)) {
          FieldRule rule = new FieldRule(spec, "", timestampFormat);
          rules.add(rule);
          if (rule.name.equals("timestamp")) {
            eventTime = rule;
          }
        }
        fields.put(type, rules);
      }
      if (eventTime == null) {
        throw new IllegalArgumentException("the contract has no timestamp field");
      }
      timestamp = eventTime;
    }

    Row validate(String topic, byte[] value) {
      String eventType = topics.get(topic);
      Object[] row = new Object[7 + eventTypes.size()];
      row[4] = eventType;
      String failure = payloadFailure(value);
      if (failure != null) {
        return rejected(row, failure);
      }
      JsonNode event;
      try {
        event = PAYLOAD.readTree(value);
      } catch (IOException | RuntimeException notJson) {
        return rejected(row, "invalid_json");
      }
      if (event == null || !event.isObject()) {
        return rejected(row, "invalid_json");
      }
      List<String> failed = new ArrayList<>(0);
      row[0] = failed;
      row[1] = rawText(event.get("event_id"));
      Instant eventTime = (Instant) timestamp.typedOnly(event.get("timestamp"));
      row[2] = eventTime;
      row[3] = eventTime == null ? null : LocalDate.ofInstant(eventTime, ZoneOffset.UTC);
      row[5] = rawText(event.get("event_type"));
      row[6] = rawText(event.get("schema_version"));
      if (eventType == null) {
        failed.add("unknown_topic");
        return RowFactory.create(row);
      }
      envelope(event, eventType, failed);
      List<FieldRule> rules = fields.get(eventType);
      List<Object> typed = new ArrayList<>(rules.size());
      Map<String, Object> byName = new HashMap<>();
      for (FieldRule rule : rules) {
        JsonNode field = event.get(rule.name);
        Object fieldValue = rule.name.equals("event_type") || rule.name.equals("schema_version")
            ? rule.typedOnly(field) // the envelope's rules above give these their own ids
            : rule.check(field, failed);
        byName.put(rule.name, fieldValue);
        if (!rule.name.equals("timestamp")) { // the event time is a column of its own
          typed.add(fieldValue);
        }
      }
      Consistency.check(eventType, byName, failed);
      row[7 + eventTypes.indexOf(eventType)] = RowFactory.create(typed.toArray());
      return RowFactory.create(row);
    }

    private void envelope(JsonNode event, String eventType, List<String> failed) {
      JsonNode type = event.get("event_type");
      if (type == null || type.isNull()) {
        failed.add("missing:event_type");
      } else if (!type.isTextual() || !eventTypes.contains(type.textValue())) {
        failed.add("unknown_event_type");
      } else if (!type.textValue().equals(eventType)) {
        failed.add("event_type_mismatch");
      }
      JsonNode version = event.get("schema_version");
      if (version == null || version.isNull()) {
        failed.add("missing:schema_version");
      } else if (!version.isIntegralNumber() || !version.canConvertToInt()
          || !supportedVersions.contains(version.intValue())) {
        failed.add("unsupported_schema_version");
      }
    }

    /** The checks on the bytes themselves, in order; null when the payload may be parsed. */
    private String payloadFailure(byte[] value) {
      if (value == null) {
        return "empty_payload";
      }
      if (!UTF8String.fromBytes(value).isValid()) { // Spark's own check: no copy, no decoding
        return "invalid_utf8";
      }
      return value.length > maxPayloadBytes ? "oversized_payload" : null;
    }

    private static Row rejected(Object[] row, String rule) {
      row[0] = List.of(rule);
      return RowFactory.create(row);
    }
  }

  /** A field's value as the sender wrote it, for quarantine: a string as is, anything else as its JSON. */
  static String rawText(JsonNode value) {
    if (value == null || value.isNull()) {
      return null;
    }
    return value.isTextual() ? value.textValue() : value.toString();
  }

  /** The contract's cross-field rules, over typed values (a null operand means another rule already failed). */
  static final class Consistency {
    private static final BigDecimal HUNDRED = BigDecimal.valueOf(100);
    private static final BigDecimal FIVE = BigDecimal.valueOf(5);

    private Consistency() {}

    static void check(String eventType, Map<String, Object> fields, List<String> failed) {
      switch (eventType) {
        case "add_to_cart" -> {
          BigDecimal expected = times(fields.get("quantity"), fields.get("price"));
          if (differ(fields.get("total_value"), expected)) {
            failed.add("inconsistent:total_value");
          }
        }
        case "purchase" -> purchase(fields, failed);
        case "product_update" -> {
          Object update = fields.get("update_type");
          if ("price_change".equals(update) && fields.get("new_price") == null) {
            failed.add("missing:new_price");
          }
          if ("inventory_update".equals(update) && fields.get("stock_level") == null) {
            failed.add("missing:stock_level");
          }
          if ("rating_update".equals(update) && fields.get("rating") == null) {
            failed.add("missing:rating");
          }
          if (fields.get("rating") instanceof BigDecimal rating && rating.compareTo(FIVE) > 0) {
            failed.add("out_of_range:rating");
          }
        }
        default -> { }
      }
    }

    @SuppressWarnings("unchecked")
    private static void purchase(Map<String, Object> fields, List<String> failed) {
      List<Row> items = (List<Row>) fields.get("items");
      BigDecimal subtotal = (BigDecimal) fields.get("subtotal");
      BigDecimal percent = (BigDecimal) fields.get("discount_percent");
      BigDecimal discount = (BigDecimal) fields.get("discount_amount");
      BigDecimal total = (BigDecimal) fields.get("total_amount");
      if (items != null) {
        BigDecimal sum = BigDecimal.ZERO;
        boolean inconsistentItem = false;
        for (Row item : items) {
          // item fields in the contract's order: product_id, quantity, unit_price, total_price, ...
          Object quantity = item.get(1);
          Object unitPrice = item.get(2);
          Object totalPrice = item.get(3);
          inconsistentItem |= differ(totalPrice, times(quantity, unitPrice));
          sum = sum == null || totalPrice == null ? null : sum.add((BigDecimal) totalPrice);
        }
        if (inconsistentItem) {
          failed.add("inconsistent:items.total_price");
        }
        if (differ(subtotal, sum)) {
          failed.add("inconsistent:subtotal");
        }
      }
      if (percent != null && percent.compareTo(HUNDRED) > 0) {
        failed.add("out_of_range:discount_percent");
      }
      BigDecimal expectedDiscount = subtotal == null || percent == null ? null
          : subtotal.multiply(percent).movePointLeft(2).setScale(2, RoundingMode.HALF_UP);
      if (differ(discount, expectedDiscount)) {
        failed.add("inconsistent:discount_amount");
      }
      if (differ(total, subtotal == null || discount == null ? null : subtotal.subtract(discount))) {
        failed.add("inconsistent:total_amount");
      }
    }

    private static BigDecimal times(Object quantity, Object price) {
      return quantity == null || price == null ? null : ((BigDecimal) price).multiply(BigDecimal.valueOf((Integer) quantity));
    }

    /** Both known and not equal in value (10.0 equals 10.00). */
    private static boolean differ(Object actual, BigDecimal expected) {
      return actual != null && expected != null && ((BigDecimal) actual).compareTo(expected) != 0;
    }
  }
}
