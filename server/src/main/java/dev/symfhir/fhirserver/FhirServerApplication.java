package dev.symfhir.fhirserver;

import ca.uhn.fhir.batch2.jobs.config.Batch2JobsConfig;
import ca.uhn.fhir.jpa.api.config.ThreadPoolFactoryConfig;
import ca.uhn.fhir.jpa.batch2.JpaBatch2Config;
import ca.uhn.fhir.jpa.config.HapiJpaConfig;
import ca.uhn.fhir.jpa.config.r4.JpaR4Config;
import ca.uhn.fhir.jpa.subscription.channel.config.SubscriptionChannelConfig;
import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.boot.autoconfigure.elasticsearch.ElasticsearchClientAutoConfiguration;
import org.springframework.boot.autoconfigure.elasticsearch.ElasticsearchRestClientAutoConfiguration;
import org.springframework.boot.autoconfigure.flyway.FlywayAutoConfiguration;
import org.springframework.boot.autoconfigure.orm.jpa.HibernateJpaAutoConfiguration;
import org.springframework.boot.autoconfigure.thymeleaf.ThymeleafAutoConfiguration;
import org.springframework.context.annotation.Import;

/**
 * A local HAPI FHIR R4 JPA server for symfhir's demo and integration tests.
 *
 * <p>HAPI's own Spring configuration supplies the DAOs, the search and transaction machinery and
 * the Batch2 job framework; {@link PersistenceConfig} supplies the database and the storage
 * settings, {@link RestServerConfig} the servlet at {@code /fhir}.
 */
// Spring Boot's own JPA, Flyway and Elasticsearch set-up would fight HAPI's (HAPI builds its own
// EntityManagerFactory and schema; Elasticsearch is on the class path but not used).
@SpringBootApplication(
    exclude = {
      HibernateJpaAutoConfiguration.class,
      FlywayAutoConfiguration.class,
      ElasticsearchRestClientAutoConfiguration.class,
      ElasticsearchClientAutoConfiguration.class,
      ThymeleafAutoConfiguration.class
    })
@Import({
  JpaR4Config.class,
  HapiJpaConfig.class,
  JpaBatch2Config.class,
  Batch2JobsConfig.class,
  ThreadPoolFactoryConfig.class,
  // In-memory message channels (Batch2 job notifications); no external broker.
  SubscriptionChannelConfig.class
})
public class FhirServerApplication {

  public static void main(String[] args) {
    try {
      SpringApplication.run(FhirServerApplication.class, args);
    } catch (Throwable startupFailure) {
      // Spring has logged why; exit now rather than linger on non-daemon threads, so
      // scripts/fhir-server sees the failure at once instead of waiting for its timeout.
      System.exit(1);
    }
  }
}
