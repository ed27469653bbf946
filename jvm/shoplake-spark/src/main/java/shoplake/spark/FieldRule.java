package shoplake.spark;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.Serializable;
import java.math.BigDecimal;
import java.time.DateTimeException;
import java.time.Instant;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;

/**
 * One field of the event contract and the rules that make it valid, built from the contract's description
 * (``pipeline/contracts/events.py``, sent as JSON by ``pipeline/streaming/silver.py``).
 *
 * <p>{@link #check} reads the field's JSON value, appends the ids of the rules it breaks (``missing:<path>``,
 * ``invalid_type:<path>``, ...) and returns its silver value, or null when it has none. A field's rules are
 * always reported in the same order (see {@link #ruleIds}), so that a record's list of failed rules does not
 * depend on which item of an array broke a rule first.
 */
final class FieldRule implements Serializable {
  private static final long serialVersionUID = 1L;
  private static final int MAX_INT_DIGITS = 9; // an INT column holds any whole number of up to nine digits

  enum Type { STRING, INT, TIMESTAMP, DECIMAL, STRING_MAP, STRUCT, ARRAY }

  final String name;
  final Type type;
  private final String path;
  private final boolean required;
  private final Set<String> allowed;
  private final boolean nonNegative;
  private final boolean positive;
  private final Pattern decimal;
  private final Pattern timestamp;
  private final List<FieldRule> fields;
  // rule ids, precomputed: this is the per-record path
  private final String missing;
  private final String invalidType;
  private final String invalidValue;
  private final String invalidDecimal;
  private final String invalidTimestamp;
  private final String negative;
  private final String outOfRange;
  private final String empty;

  /** ``spec``: one field of the contract's JSON; ``timestamp``: the format of every timestamp. */
  FieldRule(JsonNode spec, String parentPath, Pattern timestamp) {
    this.timestamp = timestamp;
    this.name = spec.get("name").asText();
    this.type = Type.valueOf(spec.get("type").asText().toUpperCase(java.util.Locale.ROOT));
    this.path = parentPath.isEmpty() ? name : parentPath + "." + name;
    this.required = spec.get("required").asBoolean();
    this.allowed = new HashSet<>();
    spec.path("allowed").forEach(value -> allowed.add(value.asText()));
    this.nonNegative = spec.path("non_negative").asBoolean(false);
    this.positive = spec.path("positive").asBoolean(false);
    int precision = spec.path("precision").asInt(12);
    int scale = spec.path("scale").asInt(2);
    this.decimal = Pattern.compile("-?\\d{1," + (precision - scale) + "}\\.\\d{" + scale + "}");
    this.fields = new ArrayList<>();
    spec.path("fields").forEach(field -> fields.add(new FieldRule(field, path, timestamp)));
    this.missing = "missing:" + path;
    this.invalidType = "invalid_type:" + path;
    this.invalidValue = "invalid_value:" + path;
    this.invalidDecimal = "invalid_decimal:" + path;
    this.invalidTimestamp = "invalid_timestamp:" + path;
    this.negative = "negative:" + path;
    this.outOfRange = "out_of_range:" + path;
    this.empty = "empty:" + path;
  }

  /** Every rule id this field can report, in the order a record reports them. */
  List<String> ruleIds() {
    List<String> ids = new ArrayList<>();
    ids.add(missing);
    switch (type) {
      case STRING -> {
        ids.add(invalidType);
        ids.add(invalidValue);
      }
      case INT -> {
        ids.add(invalidType);
        ids.add(outOfRange);
      }
      case DECIMAL -> {
        ids.add(invalidDecimal);
        ids.add(negative);
      }
      case TIMESTAMP -> ids.add(invalidTimestamp);
      case STRING_MAP, STRUCT -> ids.add(invalidType);
      case ARRAY -> {
        ids.add(invalidType);
        ids.add(empty);
      }
      default -> throw new AssertionError(type);
    }
    for (FieldRule field : fields) {
      ids.addAll(field.ruleIds());
    }
    return ids;
  }

  /** The field's silver value from its JSON ``value`` (null: absent), appending the rules it breaks to ``failed``. */
  Object check(JsonNode value, List<String> failed) {
    if (value == null || value.isNull()) {
      if (required) {
        failed.add(missing);
      }
      return null;
    }
    switch (type) {
      case STRING:
        if (!value.isTextual()) {
          failed.add(invalidType);
          return null;
        }
        String text = value.textValue();
        if (required && isBlank(text)) {
          failed.add(missing);
        }
        if (!allowed.isEmpty() && !allowed.contains(text)) {
          failed.add(invalidValue);
        }
        return text;
      case INT:
        Integer whole = wholeNumber(value);
        if (whole == null) {
          failed.add(invalidType);
          return null;
        }
        if (positive ? whole <= 0 : nonNegative && whole < 0) {
          failed.add(outOfRange);
        }
        return whole;
      case DECIMAL:
        if (!value.isTextual() || !decimal.matcher(value.textValue()).matches()) {
          failed.add(invalidDecimal);
          return null;
        }
        BigDecimal amount = new BigDecimal(value.textValue());
        if (nonNegative && amount.signum() < 0) {
          failed.add(negative);
        }
        return amount;
      case TIMESTAMP:
        Instant instant = value.isTextual() && timestamp.matcher(value.textValue()).matches()
            ? instant(value.textValue())
            : null;
        if (instant == null) {
          failed.add(invalidTimestamp);
        }
        return instant;
      case STRING_MAP:
        if (!value.isObject()) {
          failed.add(invalidType);
          return null;
        }
        Map<String, String> map = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> entry : value.properties()) {
          JsonNode item = entry.getValue();
          if (!item.isTextual() && !item.isNull()) {
            failed.add(invalidType);
            return null;
          }
          map.put(entry.getKey(), item.isNull() ? null : item.textValue());
        }
        return map;
      case STRUCT:
        if (!value.isObject()) {
          failed.add(invalidType);
          return null;
        }
        return structOf(value, failed);
      case ARRAY:
        return arrayOf(value, failed);
      default:
        throw new AssertionError(type);
    }
  }

  /** The typed value without judging it (for the envelope's own fields, whose rules are the envelope's). */
  Object typedOnly(JsonNode value) {
    List<String> ignored = new ArrayList<>();
    return check(value, ignored);
  }

  private Row structOf(JsonNode object, List<String> failed) {
    Object[] values = new Object[fields.size()];
    for (int i = 0; i < values.length; i++) {
      FieldRule field = fields.get(i);
      values[i] = field.check(object.get(field.name), failed);
    }
    return RowFactory.create(values);
  }

  private List<Row> arrayOf(JsonNode array, List<String> failed) {
    if (!array.isArray()) {
      failed.add(invalidType);
      return null;
    }
    for (JsonNode element : array) {
      if (!element.isObject()) {
        failed.add(invalidType);
        return null;
      }
    }
    if (array.isEmpty()) {
      failed.add(empty);
    }
    List<Row> rows = new ArrayList<>(array.size());
    Set<String> broken = new HashSet<>();
    List<String> perElement = new ArrayList<>();
    for (JsonNode element : array) {
      perElement.clear();
      rows.add(structOf(element, perElement));
      broken.addAll(perElement);
    }
    if (!broken.isEmpty()) {
      for (FieldRule field : fields) { // each rule once, in the fields' order, whichever items broke it
        for (String id : field.ruleIds()) {
          if (broken.contains(id)) {
            failed.add(id);
          }
        }
      }
    }
    return rows;
  }

  private static Integer wholeNumber(JsonNode value) {
    if (!value.isIntegralNumber()) {
      return null;
    }
    if (value.canConvertToInt()) {
      int number = value.intValue();
      return Math.abs((long) number) < pow10(MAX_INT_DIGITS) ? number : null;
    }
    return null;
  }

  private static long pow10(int digits) {
    long value = 1;
    for (int i = 0; i < digits; i++) {
      value *= 10;
    }
    return value;
  }

  /** ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (checked by the caller) as an instant; null when it is not a real time. */
  static Instant instant(String text) {
    try {
      return LocalDateTime.of(
              Integer.parseInt(text, 0, 4, 10),
              Integer.parseInt(text, 5, 7, 10),
              Integer.parseInt(text, 8, 10, 10),
              Integer.parseInt(text, 11, 13, 10),
              Integer.parseInt(text, 14, 16, 10),
              Integer.parseInt(text, 17, 19, 10),
              Integer.parseInt(text, 20, 23, 10) * 1_000_000)
          .toInstant(ZoneOffset.UTC);
    } catch (DateTimeException notATime) {
      return null;
    }
  }

  /** Blank as Python's ``str.strip`` sees it (the oracle's reading of a missing string). */
  static boolean isBlank(String text) {
    for (int i = 0; i < text.length(); ) {
      int point = text.codePointAt(i);
      if (!Character.isWhitespace(point) && !Character.isSpaceChar(point)) {
        return false;
      }
      i += Character.charCount(point);
    }
    return true;
  }
}
