package dev.symfhir.fhirserver;

import ca.uhn.fhir.context.support.IValidationSupport;
import ca.uhn.fhir.interceptor.api.IInterceptorBroadcaster;
import ca.uhn.fhir.jpa.api.config.JpaStorageSettings;
import ca.uhn.fhir.jpa.api.dao.DaoRegistry;
import ca.uhn.fhir.jpa.api.dao.IFhirSystemDao;
import ca.uhn.fhir.jpa.delete.ThreadSafeResourceDeleterSvc;
import ca.uhn.fhir.jpa.interceptor.CascadingDeleteInterceptor;
import ca.uhn.fhir.jpa.provider.IJpaSystemProvider;
import ca.uhn.fhir.jpa.provider.JpaCapabilityStatementProvider;
import ca.uhn.fhir.jpa.search.DatabaseBackedPagingProvider;
import ca.uhn.fhir.narrative2.NullNarrativeGenerator;
import ca.uhn.fhir.rest.api.EncodingEnum;
import ca.uhn.fhir.rest.server.IncomingRequestAddressStrategy;
import ca.uhn.fhir.rest.server.RestfulServer;
import ca.uhn.fhir.rest.server.interceptor.ResponseHighlighterInterceptor;
import ca.uhn.fhir.rest.server.provider.ResourceProviderFactory;
import ca.uhn.fhir.rest.server.util.ISearchParamRegistry;
import org.springframework.boot.web.servlet.ServletRegistrationBean;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;

/** The FHIR REST endpoint: every R4 resource type's JPA provider, served at {@code /fhir}. */
@Configuration
public class RestServerConfig {

  @Bean
  public RestfulServer restfulServer(
      IFhirSystemDao<?, ?> systemDao,
      ResourceProviderFactory resourceProviders,
      IJpaSystemProvider systemProvider,
      DaoRegistry daoRegistry,
      JpaStorageSettings storageSettings,
      ISearchParamRegistry searchParamRegistry,
      IValidationSupport validationSupport,
      DatabaseBackedPagingProvider pagingProvider,
      IInterceptorBroadcaster interceptorBroadcaster,
      ThreadSafeResourceDeleterSvc resourceDeleter) {
    RestfulServer server = new RestfulServer(systemDao.getContext());
    // No generated narratives: stored resources stay as the client wrote them.
    systemDao.getContext().setNarrativeGenerator(new NullNarrativeGenerator());

    server.registerProviders(resourceProviders.createProviders());
    server.registerProvider(systemProvider);

    JpaCapabilityStatementProvider capabilities =
        new JpaCapabilityStatementProvider(
            server, systemDao, storageSettings, searchParamRegistry, validationSupport);
    capabilities.setImplementationDescription("symfhir local HAPI FHIR R4 server");
    server.setServerConformanceProvider(capabilities);

    // As the HAPI JPA starter ships (default 20, at most 200 per page; HAPI's own cap is 50):
    // a spa client's Observations or photos often pass 50.
    pagingProvider.setDefaultPageSize(20);
    pagingProvider.setMaximumPageSize(200);
    server.setPagingProvider(pagingProvider);
    server.setDefaultResponseEncoding(EncodingEnum.JSON);
    server.setServerAddressStrategy(new IncomingRequestAddressStrategy());
    server.registerInterceptor(new ResponseHighlighterInterceptor());
    // DELETE ...?_cascade=delete removes the resources that reference the target as well.
    server.registerInterceptor(
        new CascadingDeleteInterceptor(
            systemDao.getContext(), daoRegistry, interceptorBroadcaster, resourceDeleter));
    return server;
  }

  @Bean
  public ServletRegistrationBean<RestfulServer> fhirServlet(RestfulServer restfulServer) {
    ServletRegistrationBean<RestfulServer> registration =
        new ServletRegistrationBean<>(restfulServer, "/fhir/*");
    registration.setName("fhir");
    registration.setLoadOnStartup(1);
    return registration;
  }
}
