# A stand-in for the official Keycloak image, for machines with no container registry: the same
# layout (/opt/keycloak, uid 1000 in group 0, kc.sh as entrypoint) on Debian with a JRE from apt.
# scripts/build-keycloak-image.sh builds it; the build context holds only keycloak.tar.gz.
ARG DEBIAN=oauth2-playbook/debian:bookworm

FROM ${DEBIAN} AS unpack
# Lets the build script remove this stage once the image is built.
LABEL oauth2-playbook.stage=unpack
COPY keycloak.tar.gz /tmp/
RUN mkdir /opt/keycloak && tar -xzf /tmp/keycloak.tar.gz -C /opt/keycloak --strip-components=1

FROM ${DEBIAN}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/*
# --chown here, not `chown -R` later, which would copy the 200 MB tree into a second layer.
COPY --from=unpack --chown=1000:0 /opt/keycloak /opt/keycloak
USER 1000
WORKDIR /opt/keycloak
ENTRYPOINT ["/opt/keycloak/bin/kc.sh"]
