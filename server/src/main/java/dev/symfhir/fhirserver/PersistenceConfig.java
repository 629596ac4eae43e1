package dev.symfhir.fhirserver;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.jpa.api.config.JpaStorageSettings;
import ca.uhn.fhir.jpa.config.util.HapiEntityManagerFactoryUtil;
import ca.uhn.fhir.jpa.model.config.PartitionSettings;
import ca.uhn.fhir.jpa.model.config.SubscriptionSettings;
import ca.uhn.fhir.jpa.model.dialect.HapiFhirH2Dialect;
import jakarta.persistence.EntityManagerFactory;
import java.util.HashMap;
import java.util.Map;
import javax.sql.DataSource;
import org.springframework.beans.factory.config.ConfigurableListableBeanFactory;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.context.annotation.Primary;
import org.springframework.orm.jpa.JpaTransactionManager;
import org.springframework.orm.jpa.LocalContainerEntityManagerFactoryBean;
import org.springframework.transaction.annotation.EnableTransactionManagement;

/** The database (H2, configured by {@code spring.datasource.*}) and HAPI's storage settings. */
@Configuration
@EnableTransactionManagement
public class PersistenceConfig {

  /**
   * Storage behaviour tuned for tests: what is written is searchable at once, deleting a
   * referenced resource is refused, and clients may assign their own (alphanumeric) ids.
   */
  @Bean
  public JpaStorageSettings jpaStorageSettings() {
    JpaStorageSettings settings = new JpaStorageSettings();
    // No reuse of cached search results: a search right after a write sees the write.
    settings.setReuseCachedSearchResultsForMillis(0L);
    settings.setEnforceReferentialIntegrityOnWrite(true);
    settings.setEnforceReferentialIntegrityOnDelete(true);
    settings.setResourceClientIdStrategy(JpaStorageSettings.ClientIdStrategyEnum.ALPHANUMERIC);
    settings.setAllowMultipleDelete(true);
    settings.setDeleteEnabled(true);
    settings.setExpungeEnabled(true);
    settings.setDeleteExpungeEnabled(true);
    settings.setAllowExternalReferences(false);
    settings.setAutoCreatePlaceholderReferenceTargets(false);
    // Hibernate Search (Lucene / Elasticsearch) is not configured.
    settings.setHibernateSearchIndexFullText(false);
    settings.setHibernateSearchIndexSearchParams(false);
    // Bulk imports: most resources fit in the version row instead of a separate LOB.
    // (The match-URL cache is left off: with concurrent conditional creates HAPI 8.8 can
    // cache a match without its id and then fails every transaction that hits it, NPE in
    // BaseHapiFhirResourceDao.doCreateForPostOrPut.)
    settings.setInlineResourceTextBelowSize(4000);
    return settings;
  }

  @Bean
  public PartitionSettings partitionSettings() {
    return new PartitionSettings();
  }

  @Bean
  public SubscriptionSettings subscriptionSettings() {
    return new SubscriptionSettings();
  }

  @Bean
  @Primary
  public LocalContainerEntityManagerFactoryBean entityManagerFactory(
      ConfigurableListableBeanFactory beanFactory,
      FhirContext fhirContext,
      JpaStorageSettings storageSettings,
      DataSource dataSource) {
    LocalContainerEntityManagerFactoryBean factory =
        HapiEntityManagerFactoryUtil.newEntityManagerFactory(
            beanFactory, fhirContext, storageSettings);
    factory.setPersistenceUnitName("HAPI_PU");
    factory.setDataSource(dataSource);
    factory.setJpaPropertyMap(hibernateProperties());
    return factory;
  }

  private static Map<String, Object> hibernateProperties() {
    Map<String, Object> props = new HashMap<>();
    props.put("hibernate.dialect", HapiFhirH2Dialect.class.getName());
    props.put("hibernate.hbm2ddl.auto", "update");
    props.put("hibernate.archive.scanner", "org.hibernate.boot.archive.scan.internal.DisabledScanner");
    props.put(
        "hibernate.physical_naming_strategy",
        "org.hibernate.boot.model.naming.CamelCaseToUnderscoresNamingStrategy");
    props.put(
        "hibernate.implicit_naming_strategy",
        "org.springframework.boot.orm.jpa.hibernate.SpringImplicitNamingStrategy");
    props.put("hibernate.jdbc.batch_size", "20");
    props.put("hibernate.format_sql", "false");
    props.put("hibernate.show_sql", "false");
    props.put("hibernate.cache.use_query_cache", "false");
    props.put("hibernate.cache.use_second_level_cache", "false");
    props.put("hibernate.cache.use_structured_entries", "false");
    props.put("hibernate.cache.use_minimal_puts", "false");
    props.put("hibernate.search.enabled", "false");
    // Hibernate's bulk-mutation temp tables for HAPI's entities do not create cleanly on H2
    // (duplicate column names) and are not used by HAPI; skip them rather than log errors.
    props.put("hibernate.query.mutation_strategy.global_temporary.create_tables", "false");
    props.put("hibernate.query.mutation_strategy.global_temporary.drop_tables", "false");
    return props;
  }

  @Bean
  @Primary
  public JpaTransactionManager transactionManager(EntityManagerFactory entityManagerFactory) {
    JpaTransactionManager manager = new JpaTransactionManager();
    manager.setEntityManagerFactory(entityManagerFactory);
    return manager;
  }
}
