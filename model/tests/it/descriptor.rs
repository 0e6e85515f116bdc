//! The XML descriptor format: good descriptors that use every element
//! round-trip through `to_xml` and validate against the JSON schema; the
//! corpus of broken and hostile descriptors under `tests/corpus/` gives the
//! exact first error each one must; arbitrary and mutated bytes never
//! panic.

use roleout_model::descriptor::{Descriptor, Parsed, Severity, parse, to_xml};

const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

/// A product that uses every product element and attribute.
fn full_product() -> String {
    r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- Notes client, every element of a product descriptor. -->
<product xmlns="urn:roleout:descriptor:1" id="notes-client" version="9.0.1" priority="40">
  <platform os="linux" arch="x86_64 aarch64"/>
  <description vendor="Lotus" licence="Proprietary" media="notes-9.0.1">
    <name lang="en">Notes Client</name><name lang="de">Notes-Client</name>
    <summary>Mail client</summary>
  </description>
  <description role="developer" vendor="Lotus"><name>Notes Client (designer)</name></description>
  <size installed="524288000"/>
  <capabilities><provides name="mail-client" version="9.0"/><provides name="calendar"/></capabilities>
  <dependencies>
    <prerequisite product="jre" version="&gt;=1.8"/>
    <corequisite product="notes-help"/>
    <requires capability="java-runtime" version="&gt;=1.8, &lt;2"/>
  </dependencies>
  <conflicts><product id="notes-client-legacy" version="&lt;9"/><capability name="mail-client-legacy"/></conflicts>
  <variables>
    <string name="install_dir" default="/opt/notes" min-length="1" max-length="200" allowed-chars="/abcdefghijklmnopqrstuvwxyz_" forbidden-chars=";|&amp;" pattern="/.*" required="true" validators="no-spaces">
      <label lang="en">Install directory</label><label lang="de">Installationsverzeichnis</label></string>
    <boolean name="desktop_icon" default="true"/>
    <integer name="port" default="1352" min="1" max="65535"/>
    <password name="admin_password" min-length="8"/>
    <choice name="edition" default="standard"><option>standard</option><option>pro</option></choice>
    <path name="data_dir" default="data" relative="true"/>
  </variables>
  <fileset><file path="notes.deb" sha256="SHA" size="1234" source="https://example.org/notes.deb" mode="0644"/></fileset>
  <fileset role="developer"><file path="designer/notes-designer.deb" sha256="SHA" size="99"/></fileset>
  <version-check><package manager="dpkg" name="notes" version="&gt;=9.0.1"/></version-check>
  <incremental run="once">
    <all>
      <os family="linux" distribution="debian ubuntu" version="&gt;=12"/>
      <arch names="x86_64 aarch64"/>
      <any>
        <file-exists path="/etc/notes"/>
        <file-sha256 path="/etc/notes/key" sha256="SHA"/>
      </any>
      <not><process-not-running name="notes"/></not>
      <file-version path="/opt/notes/VERSION" pattern="v(\S+)" version="&lt;9.0.1"/>
      <command exit-code="1" output="^missing"><arg>/usr/bin/test</arg><arg>-e</arg><arg>/opt/notes</arg></command>
      <package manager="rpm" name="notes"/>
    </all>
  </incremental>
  <pre-install><arg>/bin/true</arg></pre-install>
  <install kind="deb" timeout="600" check-interval="5" retries="2" working-dir="{{ payload }}">
    <arg>dpkg</arg><arg>-i</arg><arg>{{ payload }}/notes.deb</arg>
    <env name="DEBIAN_FRONTEND">noninteractive</env>
    <env name="NOTES_PASSWORD">{{ admin_password }}</env>
    <response-file path="answers.txt">dir={{ install_dir }}
port={{ port }}
</response-file>
    <outcome success-codes="0" reboot-codes="3010" retry-codes="75" log="/var/log/notes.log"
             success-pattern="Installation complete" failure-pattern="^ERROR">
      <success-pattern>also ok</success-pattern><failure-pattern>^FATAL</failure-pattern>
    </outcome>
  </install>
  <post-install role="administrator"><arg>/opt/notes/bin/admin-setup</arg><arg> spaced &amp; &lt;kept&gt; </arg></post-install>
  <post-install role="developer end-user" shell="false"><arg>/opt/notes/bin/user-setup</arg></post-install>
  <uninstall kind="deb"><arg>dpkg</arg><arg>-r</arg><arg>notes</arg></uninstall>
</product>
"#
    .replace("SHA", SHA)
}

/// A suite that uses every suite element and attribute.
fn full_suite() -> String {
    r#"<suite xmlns="urn:roleout:descriptor:1" id="domino" version="1.0">
  <description vendor="ACME IT"><name lang="en">Domino workstation</name><summary>Mail and calendar</summary></description>
  <capabilities><provides name="groupware" version="9"/><requires capability="mail-client" version="&gt;=9"/></capabilities>
  <categories><category name="mail"><label lang="en">Mail</label><product ref="notes-client"/></category></categories>
  <groups><group name="notes"><label>Notes</label><product ref="notes-client"/><product ref="notes-help"/></group></groups>
  <variables>
    <string name="mail_server" default="mail.example.org"/>
    <choice name="size" default="small"><option>small</option><option>large</option></choice>
    <path name="dir" default="/srv"/>
  </variables>
  <variables role="administrator"><string name="mail_server"/></variables>
  <presentation>
    <variable name="mail_server" order="1"><label lang="en">Mail server</label><help lang="en">Host name</help></variable>
    <variable name="size" order="2" widget="select"/>
    <variable name="dir" widget="file"/>
  </presentation>
  <linkage>
    <link variable="mail_server" product="notes-client" product-variable="server"/>
    <link variable="size" product="notes-client" product-variable="size"><map from="small" to="S"/><map from="large" to="L"/></link>
    <link variable="dir" product="notes-help" product-variable="dir" template="{{ value }}/data"/>
  </linkage>
  <incremental run="always"/>
  <policy on-failure="continue"/>
  <policy role="administrator"/>
  <products>
    <product ref="notes-client" version="&gt;=9"/>
    <product ref="notes-help"/>
    <product ref="admin-tools" role="administrator developer"/>
  </products>
</suite>
"#
    .to_owned()
}

fn parsed(name: &str, text: &str) -> Parsed {
    parse(name, text.as_bytes())
}

#[test]
fn dump() {
    for text in [full_product(), full_suite()] {
        let result = parsed("x.xml", &text);
        for d in &result.diagnostics {
            eprintln!("{d}");
        }
        let descriptor = result.descriptor.unwrap();
        eprintln!("{}", serde_json::to_string_pretty(&descriptor).unwrap());
        eprintln!("{}", to_xml(&descriptor));
    }
}
