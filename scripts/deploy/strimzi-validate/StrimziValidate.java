// StrimziValidate: strict offline validation of Strimzi KafkaTopic resources.
//
// Strimzi's CRD schemas are generated from its Java API model (io.strimzi:api), so each
// KafkaTopic is decoded into io.strimzi.api.kafka.model.topic.KafkaTopic. Strimzi's model
// keeps unknown fields in `additionalProperties` instead of failing, so any field that
// lands there (a misspelt `partitons`, a stray `spec.replica`) is reported here. Topic
// settings under spec.config must be names Kafka knows (org.apache.kafka.common.config.
// TopicConfig). The project's own topic rules follow (the models topic is compacted).
//
// Usage: java -cp CLASSPATH StrimziValidate.java rendered.yaml...
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.MappingIterator;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import io.fabric8.kubernetes.api.model.ObjectMeta;
import io.strimzi.api.kafka.model.topic.KafkaTopic;
import io.strimzi.api.kafka.model.topic.KafkaTopicSpec;
import java.io.File;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.apache.kafka.common.config.TopicConfig;

public class StrimziValidate {
    // Versions of kafka.strimzi.io KafkaTopic that Strimzi 0.49 serves.
    static final Set<String> SERVED = Set.of("kafka.strimzi.io/v1beta2", "kafka.strimzi.io/v1");

    public static void main(String[] args) throws Exception {
        if (args.length == 0) {
            System.err.println("usage: StrimziValidate rendered.yaml...");
            System.exit(2);
        }
        ObjectMapper mapper = new ObjectMapper(new YAMLFactory())
                .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
                .enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES)
                .enable(DeserializationFeature.FAIL_ON_READING_DUP_TREE_KEY);
        Set<String> topicConfigs = knownTopicConfigs();
        int failed = 0;
        for (String file : args) {
            List<String> problems = new ArrayList<>();
            Map<String, KafkaTopic> topics = new HashMap<>();
            try (MappingIterator<JsonNode> docs = mapper.readerFor(JsonNode.class).readValues(new File(file))) {
                while (docs.hasNext()) {
                    JsonNode doc = docs.next();
                    if (doc == null || doc.isNull() || doc.isMissingNode()) continue;
                    String apiVersion = doc.path("apiVersion").asText();
                    if (!apiVersion.startsWith("kafka.strimzi.io/")) continue;
                    String id = apiVersion + " " + doc.path("kind").asText() + "/" + doc.path("metadata").path("name").asText();
                    if (!doc.path("kind").asText().equals("KafkaTopic")) {
                        problems.add(id + ": no validator for this Strimzi kind");
                        continue;
                    }
                    if (!SERVED.contains(apiVersion)) {
                        problems.add(id + ": apiVersion not served by Strimzi 0.49 (use one of " + SERVED + ")");
                        continue;
                    }
                    KafkaTopic topic;
                    try {
                        topic = mapper.treeToValue(doc, KafkaTopic.class);
                    } catch (Exception e) {
                        problems.add(id + ": " + e.getMessage().lines().findFirst().orElse(""));
                        continue;
                    }
                    checkTopic(id, topic, topicConfigs, problems);
                    String name = topic.getSpec() != null && topic.getSpec().getTopicName() != null
                            ? topic.getSpec().getTopicName() : topic.getMetadata().getName();
                    topics.put(name, topic);
                }
            } catch (Exception e) {
                problems.add("reading: " + e.getMessage());
            }
            if (problems.isEmpty()) checkProject(topics, problems);
            for (String p : problems) System.out.println("FAIL " + file + ": " + p);
            if (problems.isEmpty()) {
                System.out.println("ok   " + file + ": " + topics.size() + " KafkaTopics");
            } else {
                failed++;
            }
        }
        System.exit(failed == 0 ? 0 : 1);
    }

    static void checkTopic(String id, KafkaTopic topic, Set<String> topicConfigs, List<String> problems) {
        unknown(id, "", topic.getAdditionalProperties(), problems);
        ObjectMeta meta = topic.getMetadata();
        if (meta == null || meta.getName() == null) {
            problems.add(id + ": metadata.name is required");
            return;
        }
        unknown(id, "metadata.", meta.getAdditionalProperties(), problems);
        if (meta.getLabels() == null || !meta.getLabels().containsKey("strimzi.io/cluster")) {
            problems.add(id + ": label strimzi.io/cluster is required (the Topic Operator ignores the topic without it)");
        }
        if (topic.getStatus() != null) problems.add(id + ": status must not be set in a manifest");
        KafkaTopicSpec spec = topic.getSpec();
        if (spec == null) {
            problems.add(id + ": spec is required");
            return;
        }
        unknown(id, "spec.", spec.getAdditionalProperties(), problems);
        if (spec.getPartitions() == null || spec.getPartitions() < 1) {
            problems.add(id + ": spec.partitions must be >= 1");
        }
        if (spec.getReplicas() == null || spec.getReplicas() < 1 || spec.getReplicas() > 32767) {
            problems.add(id + ": spec.replicas must be within 1..32767");
        }
        if (spec.getConfig() != null) {
            for (Map.Entry<String, Object> e : spec.getConfig().entrySet()) {
                if (!topicConfigs.contains(e.getKey())) {
                    problems.add(id + ": spec.config." + e.getKey() + " is not a Kafka topic setting");
                }
                Object v = e.getValue();
                if (!(v instanceof String || v instanceof Number || v instanceof Boolean || v instanceof List)) {
                    problems.add(id + ": spec.config." + e.getKey() + " must be a string, number, boolean or list");
                }
            }
        }
    }

    static void checkProject(Map<String, KafkaTopic> topics, List<String> problems) {
        for (String name : List.of("patients", "predictions", "dead-letters", "models")) {
            if (!topics.containsKey(name)) problems.add("topic " + name + " is missing");
        }
        KafkaTopic models = topics.get("models");
        if (models != null) {
            Object policy = models.getSpec().getConfig() == null ? null : models.getSpec().getConfig().get("cleanup.policy");
            if (policy == null || !String.valueOf(policy).equals("compact")) {
                problems.add("topic models: cleanup.policy must be compact (the newest model per name is kept forever)");
            }
            if (!Integer.valueOf(1).equals(models.getSpec().getPartitions())) {
                problems.add("topic models: must have exactly 1 partition (one total order of model versions)");
            }
        }
    }

    static void unknown(String id, String prefix, Map<String, Object> extra, List<String> problems) {
        if (extra == null) return;
        for (String key : new TreeSet<>(extra.keySet())) {
            problems.add(id + ": unknown field \"" + prefix + key + "\"");
        }
    }

    static Set<String> knownTopicConfigs() throws IllegalAccessException {
        Set<String> names = new TreeSet<>();
        for (Field f : TopicConfig.class.getFields()) {
            if (Modifier.isStatic(f.getModifiers()) && f.getType() == String.class && f.getName().endsWith("_CONFIG")) {
                names.add((String) f.get(null));
            }
        }
        return names;
    }
}
