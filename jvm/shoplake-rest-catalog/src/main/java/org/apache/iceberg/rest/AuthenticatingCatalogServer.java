package org.apache.iceberg.rest;

import jakarta.servlet.DispatcherType;
import jakarta.servlet.Filter;
import jakarta.servlet.FilterChain;
import jakarta.servlet.ServletException;
import jakarta.servlet.ServletRequest;
import jakarta.servlet.ServletResponse;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.time.Duration;
import java.time.Instant;
import java.util.Base64;
import java.util.EnumSet;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.hadoop.conf.Configuration;
import org.apache.iceberg.CatalogProperties;
import org.apache.iceberg.CatalogUtil;
import org.apache.iceberg.catalog.Catalog;
import org.apache.iceberg.jdbc.JdbcCatalog;
import org.eclipse.jetty.ee10.servlet.FilterHolder;
import org.eclipse.jetty.ee10.servlet.ServletContextHandler;
import org.eclipse.jetty.ee10.servlet.ServletHolder;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;

/**
 * Iceberg's REST catalog server (the servlet and adapter of {@code RESTCatalogServer}, the program behind the
 * apache/iceberg-rest-fixture image) behind OAuth2 client credentials, listening on 127.0.0.1 only.
 *
 * <p>The fixture authenticates nothing: its token endpoint hands a token to any client id and every other request
 * is served without one. Here {@code POST /v1/oauth/tokens} checks the client id and secret (form fields, or HTTP
 * Basic) against {@code SHOPLAKE_REST_CLIENT_ID} and {@code SHOPLAKE_REST_CLIENT_SECRET} and issues a random bearer
 * token for an hour (renewed by a token exchange that presents a live token); every other request needs a live
 * token, or gets 401 in the REST protocol's error shape. The backing catalog comes from the same {@code CATALOG_*}
 * variables as the fixture's; the port from {@code CATALOG_REST_PORT}. Lives in the fixture's package to build
 * the fixture's own adapter, whose constructor is package-private.
 */
public final class AuthenticatingCatalogServer {
  static final String TOKEN_PATH = "/v1/oauth/tokens";
  static final Duration TOKEN_LIFETIME = Duration.ofHours(1);
  private static final String TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";

  private AuthenticatingCatalogServer() {}

  public static void main(String[] args) throws Exception {
    String clientId = required("SHOPLAKE_REST_CLIENT_ID");
    String clientSecret = required("SHOPLAKE_REST_CLIENT_SECRET");
    Map<String, String> properties = new HashMap<>(RCKUtils.environmentCatalogConfig());
    properties.putIfAbsent(CatalogProperties.CATALOG_IMPL, JdbcCatalog.class.getName());
    properties.putIfAbsent("jdbc.schema-version", "V1");
    if (!properties.containsKey(CatalogProperties.URI)
        || !properties.containsKey(CatalogProperties.WAREHOUSE_LOCATION)) {
      System.err.println("CATALOG_URI and CATALOG_WAREHOUSE must name the backing catalog and its warehouse");
      System.exit(2);
    }
    int port = Integer.parseInt(properties.getOrDefault("rest.port", "8181"));
    // The backing JDBC catalog keys its rows by this name (CATALOG_CATALOG_NAME): one server, one set of tables.
    String name = properties.getOrDefault("catalog.name", "rest_backend");
    Catalog catalog = CatalogUtil.buildIcebergCatalog(name, properties, new Configuration());
    RESTCatalogAdapter adapter =
        new RESTServerCatalogAdapter(new RESTCatalogServer.CatalogContext(catalog, properties));

    ServletContextHandler context = new ServletContextHandler(ServletContextHandler.NO_SESSIONS);
    context.addServlet(new ServletHolder(new RESTCatalogServlet(adapter)), "/*");
    context.addFilter(
        new FilterHolder(new ClientCredentials(clientId, clientSecret)),
        "/*",
        EnumSet.of(DispatcherType.REQUEST));
    Server server = new Server();
    ServerConnector connector = new ServerConnector(server);
    connector.setHost("127.0.0.1");
    connector.setPort(port);
    server.addConnector(connector);
    server.setHandler(context);
    server.start();
    server.join();
  }

  private static String required(String name) {
    String value = System.getenv(name);
    if (value == null || value.isEmpty()) {
      System.err.println(name + " is not set: the server refuses to run without client credentials");
      System.exit(2);
    }
    return value;
  }

  /** The token endpoint, and the bearer check in front of the catalog. */
  static final class ClientCredentials implements Filter {
    private final byte[] clientId;
    private final byte[] clientSecret;
    private final Map<String, Instant> liveTokens = new ConcurrentHashMap<>();
    private final SecureRandom random = new SecureRandom();

    ClientCredentials(String clientId, String clientSecret) {
      this.clientId = clientId.getBytes(StandardCharsets.UTF_8);
      this.clientSecret = clientSecret.getBytes(StandardCharsets.UTF_8);
    }

    @Override
    public void doFilter(ServletRequest req, ServletResponse res, FilterChain chain)
        throws IOException, ServletException {
      HttpServletRequest request = (HttpServletRequest) req;
      HttpServletResponse response = (HttpServletResponse) res;
      if (request.getRequestURI().endsWith(TOKEN_PATH) && "POST".equals(request.getMethod())) {
        issueToken(request, response);
      } else if (live(bearer(request))) {
        chain.doFilter(req, res);
      } else {
        response.setHeader("WWW-Authenticate", "Bearer");
        reply(
            response,
            401,
            "{\"error\":{\"message\":\"a bearer token from " + TOKEN_PATH
                + " is required\",\"type\":\"NotAuthorizedException\",\"code\":401}}");
      }
    }

    private void issueToken(HttpServletRequest request, HttpServletResponse response) throws IOException {
      String grant = request.getParameter("grant_type");
      boolean granted;
      if ("client_credentials".equals(grant)) {
        String[] basic = basic(request);
        String id = basic != null ? basic[0] : request.getParameter("client_id");
        String secret = basic != null ? basic[1] : request.getParameter("client_secret");
        granted = matches(clientId, id) & matches(clientSecret, secret);
      } else if (TOKEN_EXCHANGE.equals(grant)) {
        granted = live(request.getParameter("subject_token")) || live(bearer(request));
      } else {
        reply(response, 400, "{\"error\":\"unsupported_grant_type\"}");
        return;
      }
      if (!granted) {
        reply(response, 401, "{\"error\":\"invalid_client\",\"error_description\":\"unknown client or secret\"}");
        return;
      }
      byte[] bytes = new byte[32];
      random.nextBytes(bytes);
      String token = Base64.getUrlEncoder().withoutPadding().encodeToString(bytes);
      Instant now = Instant.now();
      liveTokens.values().removeIf(expiry -> expiry.isBefore(now));
      liveTokens.put(token, now.plus(TOKEN_LIFETIME));
      reply(
          response,
          200,
          "{\"access_token\":\"" + token + "\",\"token_type\":\"bearer\",\"expires_in\":"
              + TOKEN_LIFETIME.toSeconds()
              + ",\"issued_token_type\":\"urn:ietf:params:oauth:token-type:access_token\"}");
    }

    private boolean live(String token) {
      if (token == null) {
        return false;
      }
      Instant expiry = liveTokens.get(token);
      return expiry != null && Instant.now().isBefore(expiry);
    }

    private static String bearer(HttpServletRequest request) {
      String header = request.getHeader("Authorization");
      return header != null && header.regionMatches(true, 0, "Bearer ", 0, 7) ? header.substring(7).trim() : null;
    }

    private static String[] basic(HttpServletRequest request) {
      String header = request.getHeader("Authorization");
      if (header == null || !header.regionMatches(true, 0, "Basic ", 0, 6)) {
        return null;
      }
      String decoded;
      try {
        decoded = new String(Base64.getDecoder().decode(header.substring(6).trim()), StandardCharsets.UTF_8);
      } catch (IllegalArgumentException e) {
        return null;
      }
      int colon = decoded.indexOf(':');
      return colon < 0 ? null : new String[] {decoded.substring(0, colon), decoded.substring(colon + 1)};
    }

    /** Compares in constant time for a given length, so the answer's timing does not tell a secret's prefix. */
    private static boolean matches(byte[] expected, String given) {
      return given != null && MessageDigest.isEqual(expected, given.getBytes(StandardCharsets.UTF_8));
    }

    private static void reply(HttpServletResponse response, int status, String json) throws IOException {
      response.setStatus(status);
      response.setContentType("application/json");
      response.setHeader("Cache-Control", "no-store");
      response.getOutputStream().write(json.getBytes(StandardCharsets.UTF_8));
    }
  }
}
