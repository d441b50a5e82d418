// Java Avro's view of heart-risk's wire format, for interop/test_avro_spec.py. Run in source-file
// mode with Avro on the classpath:
//
//   java -cp CLASSPATH interop/java/AvroSpec.java fingerprints SCHEMA_DIR
//       one line per schema: file stem, tab, SchemaNormalization.parsingFingerprint64 as the
//       hex of its 8 little-endian bytes (the order BinaryMessageEncoder writes them in)
//   java -cp CLASSPATH interop/java/AvroSpec.java encode PATIENT_RECORD_AVSC
//       hex of one PatientRecord written with BinaryMessageEncoder (single-object encoding)
//   java -cp CLASSPATH interop/java/AvroSpec.java decode AVSC HEX
//       the record BinaryMessageDecoder reads from HEX, as JSON

import java.io.File;
import java.nio.ByteBuffer;
import java.util.HexFormat;

import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.message.BinaryMessageEncoder;

public class AvroSpec {
    static final String[] SCHEMAS = {"patient_record", "prediction", "dead_letter", "model_version"};

    public static void main(String[] args) throws Exception {
        switch (args[0]) {
            case "fingerprints" -> {
                for (String name : SCHEMAS) {
                    Schema schema = new Schema.Parser().parse(new File(args[1], name + ".avsc"));
                    long fp = SchemaNormalization.parsingFingerprint64(schema);
                    ByteBuffer le = ByteBuffer.allocate(8).order(java.nio.ByteOrder.LITTLE_ENDIAN);
                    le.putLong(fp);
                    System.out.println(name + "\t" + HexFormat.of().formatHex(le.array()));
                }
            }
            case "encode" -> {
                Schema schema = new Schema.Parser().parse(new File(args[1]));
                GenericRecord r = new GenericData.Record(schema);
                r.put("patient_id", "java-1");
                r.put("event_time", 1700000000123L);
                r.put("age", 63);
                r.put("sex", 1);
                r.put("cp", 4);
                r.put("trestbps", 145.0);
                r.put("chol", 233.5);
                r.put("fbs", 1);
                r.put("restecg", 2);
                r.put("thalach", 150.0);
                r.put("exang", 0);
                r.put("oldpeak", 2.3);
                r.put("slope", 3);
                r.put("ca", null);
                r.put("thal", 7);
                ByteBuffer out = new BinaryMessageEncoder<GenericRecord>(GenericData.get(), schema).encode(r);
                byte[] bytes = new byte[out.remaining()];
                out.get(bytes);
                System.out.println(HexFormat.of().formatHex(bytes));
            }
            case "decode" -> {
                Schema schema = new Schema.Parser().parse(new File(args[1]));
                byte[] bytes = HexFormat.of().parseHex(args[2]);
                GenericRecord r = new BinaryMessageDecoder<GenericRecord>(GenericData.get(), schema).decode(bytes);
                System.out.println(r);
            }
            default -> throw new IllegalArgumentException("unknown command " + args[0]);
        }
    }
}
